"""The cloud process's composition root: builds every component and serves the API.

Order on start: data dir → CA and server certificate → admin token → store → pipeline worker
(``DATA/pipelines``) → API → listen → write ``DATA/admin.yaml`` (the client config, with the
real port). Nothing else in the cloud
package reads settings or opens sockets on its own; everything is passed in from here.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import signal
import socket
import time
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import uvicorn
import yaml

from edgeweave import __version__
from edgeweave.aio.gcfreeze import keep_heap_frozen
from edgeweave.cloud.api.app import create_app
from edgeweave.cloud.api.corked import CorkedH11Protocol
from edgeweave.cloud.api.deps import ApiDeps
from edgeweave.cloud.api.events import EventsDeps
from edgeweave.cloud.api.guards import Principal
from edgeweave.cloud.api.join import JoinDeps
from edgeweave.cloud.api.merge import MERGE_PATH, merge_subject
from edgeweave.cloud.api.objects import ObjectDeps
from edgeweave.cloud.api.output import OUTPUT_PATH, output_subject
from edgeweave.cloud.api.transfer import TRANSFER_PATH, commit_subject
from edgeweave.cloud.api.twins import TwinDeps
from edgeweave.cloud.endpoints import open_endpoints_controller
from edgeweave.cloud.hub import Hub, HubDeps, open_hub
from edgeweave.cloud.join import JoinService
from edgeweave.cloud.objects import (
    ObjectStore,
    load_or_create_object_url_secret,
    sign_object_url,
    sign_subject_url,
)
from edgeweave.cloud.pipelines import PipelineService, open_pipelines
from edgeweave.cloud.pipelines.wfhost import open_workflows
from edgeweave.cloud.pipelines.workflows import Workflows
from edgeweave.cloud.pki import CertificateAuthority
from edgeweave.cloud.secrets import EncryptingStore, SecretCodec, load_or_create_secrets_key
from edgeweave.cloud.store.base import CloudStore
from edgeweave.cloud.store.factory import open_store
from edgeweave.cloud.tokens import (
    JoinTokenIssuer,
    TokenChecker,
    generate_admin_token,
    load_or_create_join_secret,
)
from edgeweave.config.settings import CloudSettings
from edgeweave.errors import ConfigError, LinkClosed
from edgeweave.protocol.refs import ResourceRef

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CloudEndpoint:
    """How to reach a running cloud: what admin.yaml holds."""

    url: str
    token: str
    ca_pem: str
    admin_config: Path


def _write_private(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def load_or_create_admin_token(data_dir: Path) -> str:
    path = data_dir / "admin-token"
    if path.exists():
        token = path.read_text().strip()
        if token:
            return token
    token = generate_admin_token()
    _write_private(path, token + "\n")
    return token


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # accepted connections inherit this: a response written as headers + body must not wait
    # for the peer's delayed ACK (Nagle), which costs ~40 ms per request under TLS
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port}: {e.strerror}") from e
    sock.listen(2048)
    sock.setblocking(False)
    return sock


def _client_host(host: str) -> str:
    if host in ("0.0.0.0", ""):  # noqa: S104 - mapping a wildcard bind to a reachable address
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


def write_client_config(path: Path, endpoint_url: str, token: str, ca_pem: str) -> None:
    doc = {"server": endpoint_url, "token": token, "certificateAuthorityData": ca_pem}
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_private(path, yaml.safe_dump(doc, sort_keys=False))


def user_config_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "edgeweave" / "config.yaml"


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: the process's entry point owns signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@dataclass
class RunningCloud:
    endpoint: CloudEndpoint
    server: uvicorn.Server
    task: asyncio.Task[None]

    def request_stop(self) -> None:
        self.server.should_exit = True

    async def wait_stopped(self) -> None:
        await asyncio.shield(self.task)


@contextlib.asynccontextmanager
async def open_cloud(settings: CloudSettings) -> AsyncIterator[RunningCloud]:
    """Start every component; leaving the context stops them in reverse order."""
    data_dir = settings.data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    data_dir.chmod(0o700)  # it holds the CA key, the tokens and the database: owner only
    host, port = settings.server.host, settings.server.port
    sock = _bind(host, port)
    real_port = sock.getsockname()[1]
    scheme = "https" if settings.server.tls else "http"
    # what nodes and remote admins dial: the first advertised name, else the bind address
    public = _client_host(
        settings.server.advertise_hosts[0] if settings.server.advertise_hosts else host
    )
    url = f"{scheme}://{public}:{real_port}"

    ca = CertificateAuthority.load_or_create(data_dir / "pki")
    ssl_kw: dict[str, str] = {}
    if settings.server.tls:
        wildcard = ("", "0.0.0.0", "::")  # noqa: S104 - these are skipped, not bound
        hosts = [h for h in (host, *settings.server.advertise_hosts) if h not in wildcard]
        cert, key = ca.issue_server_cert(data_dir / "pki", hosts=hosts)
        ssl_kw = {"ssl_certfile": str(cert), "ssl_keyfile": str(key)}
    token = load_or_create_admin_token(data_dir)
    checker = TokenChecker(token)
    admin = Principal("admin", "admin")

    def check(candidate: str) -> Principal | None:
        return admin if checker.check(candidate) else None

    store: CloudStore = await open_store(
        settings.store.url,
        data_dir,
        changelog_retention=settings.store.changelog_retention,
        twin_history_points=settings.store.twin_history_points,
        twin_history_max_age_s=settings.store.twin_history_max_age_s,
    )
    stack = contextlib.AsyncExitStack()
    try:
        store_kind = (
            "postgresql" if settings.store.url.startswith(("postgres", "postgresql")) else "sqlite"
        )
        codec = SecretCodec(load_or_create_secrets_key(data_dir / "pki"))
        issuer = JoinTokenIssuer(load_or_create_join_secret(data_dir), ca.fingerprint)
        # the hub sets the real URL once it listens (hub_port 0 = known only then)
        hub_port = settings.server.hub_port
        hub_url = {"url": f"wss://{public}:{hub_port}/link" if hub_port else ""}
        hub_ref: list[Hub] = []  # the API is built before the hub listens
        join = JoinDeps(JoinService(store, ca, issuer), lambda: hub_url["url"], url)
        objects = ObjectDeps(
            ObjectStore(data_dir / "objects", settings.objects.max_bytes),
            load_or_create_object_url_secret(data_dir),
        )
        api_store = EncryptingStore(store, codec)
        pipelines: PipelineService | None = None
        workflows: Workflows | None = None
        if settings.pipelines.enabled:
            pipelines = await stack.enter_async_context(
                open_pipelines(
                    store,
                    data_dir / "pipelines",
                    settings.pipelines,
                    hidden=[data_dir, user_config_path().parent],
                )
            )
            workflows = await stack.enter_async_context(
                open_workflows(store, pipelines, data_dir / "pipelines")
            )
        app = create_app(
            ApiDeps(api_store, settings.api, __version__, store_kind),
            check,
            join=join,
            objects=objects,
            logs=partial(_open_app_log, hub_ref),
            events=EventsDeps(store),
            twins=TwinDeps(api_store, store),
            pipelines=pipelines,
            workflows=workflows,
        )
        config = uvicorn.Config(
            app,
            http=CorkedH11Protocol,  # a response's head and body in one write
            log_level="warning",
            lifespan="off",
            proxy_headers=False,
            server_header=False,
            timeout_graceful_shutdown=3,
            **ssl_kw,  # type: ignore[arg-type]
        )
        server = _Server(config)
        ca_pem = ca.cert_pem.decode()
        admin_config = data_dir / "admin.yaml"
        serve_task = asyncio.create_task(server.serve(sockets=[sock]), name="cloud-api-server")
        try:
            hub_deps = _hub_deps(
                settings, store, ca, secrets=codec, url_secret=objects.url_secret, api_url=url
            )
            if pipelines is not None:  # jobs edge nodes ran: listed with the cloud's own
                hub_deps = dataclasses.replace(
                    hub_deps,
                    record_jobs=pipelines.record_node_jobs,
                    record_commits=pipelines.record_node_commits,
                    sign_commit_url=partial(_sign_commit_url, objects.url_secret, url),
                    sign_merge_url=partial(_sign_merge_url, objects.url_secret, url),
                    sign_output_url=partial(_sign_output_url, objects.url_secret, url),
                )
            # the mesh: one Endpoints object per Service, kept from Apps' status and Nodes
            async with open_endpoints_controller(store), open_hub(hub_deps) as hub:
                hub_url["url"] = hub.url
                hub_ref.append(hub)
                # written last: a client that finds admin.yaml finds every listener up
                write_client_config(admin_config, url, token, ca_pem)
                if settings.write_user_config and not user_config_path().exists():
                    write_client_config(user_config_path(), url, token, ca_pem)
                yield RunningCloud(
                    CloudEndpoint(url, token, ca_pem, admin_config), server, serve_task
                )
        finally:
            server.should_exit = True
            await serve_task
    finally:
        sock.close()
        await stack.aclose()  # the pipeline worker: running jobs end as killed
        await store.aclose()


async def serve(
    settings: CloudSettings, on_ready: Callable[[CloudEndpoint], None] | None = None
) -> None:
    """Run until SIGINT or SIGTERM, then shut down cleanly (connections, store)."""
    loop = asyncio.get_running_loop()
    async with open_cloud(settings) as cloud:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, cloud.request_stop)
        freezer = None
        if settings.server.gc_freeze_interval_s > 0:  # the long-running process only
            freezer = asyncio.create_task(
                keep_heap_frozen(
                    settings.server.gc_freeze_interval_s, settings.server.gc_thaw_interval_s
                ),
                name="cloud-gc-freezer",
            )
        try:
            if on_ready is not None:
                on_ready(cloud.endpoint)
            await cloud.wait_stopped()
        finally:
            if freezer is not None:
                freezer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await freezer
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)


def _sign_url(
    secret: bytes, base_url: str, subject: str, path: str, node: str
) -> tuple[str, float]:
    """A URL under ``path`` for ``node``, signed for ``subject`` and valid like artifact URLs:
    a Copier's commit fetch, a node's deliveries to a Merger, a cloud worker's output pushes
    (docs/pipelines.md)."""
    expires_at = int(time.time()) + ARTIFACT_URL_TTL_S
    url = sign_subject_url(secret, subject, path, node, expires_at, base_url=base_url)
    return url, expires_at


def _sign_commit_url(secret: bytes, base_url: str, commit: str, node: str) -> tuple[str, float]:
    return _sign_url(secret, base_url, commit_subject(commit), f"{TRANSFER_PATH}/{commit}", node)


def _pipeline_url_signer(
    prefix: str, subject: Callable[[str, str], str]
) -> Callable[[bytes, str, ResourceRef, str], tuple[str, float]]:
    def sign(secret: bytes, base_url: str, pipeline: ResourceRef, node: str) -> tuple[str, float]:
        path = f"{prefix}/{pipeline.namespace}/{pipeline.name}"
        return _sign_url(secret, base_url, subject(pipeline.namespace, pipeline.name), path, node)

    return sign


_sign_merge_url = _pipeline_url_signer(MERGE_PATH, merge_subject)
_sign_output_url = _pipeline_url_signer(OUTPUT_PATH, output_subject)


def _open_app_log(
    hub_ref: list[Hub], node: str, namespace: str, name: str, tail: int | None, follow: bool
) -> AbstractAsyncContextManager[AsyncIterable[list[str]]]:
    if not hub_ref:
        raise LinkClosed("the edge hub is not listening yet")
    return hub_ref[0].open_log_stream(node, namespace, name, tail, follow)


ARTIFACT_URL_TTL_S = 300  # edge-link.md §4: presigned artifact URLs are valid 5 minutes


def _hub_deps(
    settings: CloudSettings,
    store: CloudStore,
    ca: CertificateAuthority,
    *,
    secrets: SecretCodec,
    url_secret: bytes,
    api_url: str,
) -> HubDeps:
    """The edge hub's dependencies: always TLS with the cloud CA, on ``server.hub_port``."""
    wildcard = ("", "0.0.0.0", "::")  # noqa: S104 - these are skipped, not bound
    host = settings.server.host
    hosts = [h for h in (host, *settings.server.advertise_hosts) if h not in wildcard]
    cert, key = ca.issue_server_cert(settings.data_dir / "pki", hosts=hosts)

    def sign_url(digest: str, node: str) -> tuple[str, float]:
        expires_at = int(time.time()) + ARTIFACT_URL_TTL_S
        return sign_object_url(url_secret, digest, node, expires_at, base_url=api_url), expires_at

    return HubDeps(
        store=store,
        ca=ca,
        server_cert=cert,
        server_key=key,
        settings=settings.hub,
        host=host,
        port=settings.server.hub_port,
        advertise_host=settings.server.advertise_hosts[0]
        if settings.server.advertise_hosts
        else None,
        replica_id=f"{socket.gethostname()}-{os.getpid()}",
        sign_url=sign_url,
        decode_secret=secrets.decrypt_object,
    )
