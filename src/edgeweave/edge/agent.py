"""The edge agent's composition root: builds every component from settings and runs them.

Start order: identity → local store → outbox → mesh (DNS and service proxies, from the local
store) → runtime (apps come back from the local store at once, before any network) → status
file → cloud link, the device side (twin store, MQTT bus, mappers) once the node holds a
Device, and the pipeline host (local repos and jobs) once it holds a Pipeline. Stop order is
the reverse. Nothing else in the agent reads settings, opens files of its
own accord or dials the network.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgeweave.config.edge import EdgeSettings
from edgeweave.edge import cloudapi
from edgeweave.edge.devices import SYSTEM_NAMESPACE
from edgeweave.edge.identity import NodeIdentity, load_identity
from edgeweave.edge.link import LinkSession, LinkState, new_boot_id, run_link
from edgeweave.edge.localstatus import StatusFile
from edgeweave.edge.mesh import MeshHost, RelayTarget, cached_context, open_mesh_host
from edgeweave.edge.outbox import Outbox, open_outbox
from edgeweave.edge.runtime.artifacts import ArtifactCache
from edgeweave.edge.runtime.status import AppStatus
from edgeweave.edge.runtime.supervisor import Runtime
from edgeweave.edge.store import EdgeStore, load_or_create_store_key, open_edge_store
from edgeweave.edge.sync import Sync, reconcile_forever
from edgeweave.errors import LinkBroken, StoreError
from edgeweave.protocol import messages as m
from edgeweave.transport.link import Link
from edgeweave.transport.ws import WsOptions, open_ws_link

log = logging.getLogger(__name__)


@dataclass
class Agent:
    """A running agent; tests and `edge run` hold one of these."""

    identity: NodeIdentity
    settings: EdgeSettings
    store: EdgeStore
    outbox: Outbox
    runtime: Runtime
    link_state: LinkState
    status_file: StatusFile
    mesh: MeshHost | None = None
    session: LinkSession | None = None
    devices: Any = None  # a devices.service.Devices once the node holds a Device
    stopped: asyncio.Event = field(default_factory=asyncio.Event)

    def request_stop(self) -> None:
        self.stopped.set()


async def _fetch_artifact(agent_ref: list[Agent], digest: str, dest: Path) -> None:
    """The runtime's fetcher: ask the cloud for a presigned URL, download, (cache verifies)."""
    agent = agent_ref[0]
    session = agent.session
    if session is None:
        raise LinkBroken(f"artifact {digest} is not cached and the cloud is unreachable")
    answer = await session.request(m.ArtifactUrlRequest(digest=digest))
    if isinstance(answer, m.Error):
        raise LinkBroken(f"artifact {digest}: {answer.reason}: {answer.message}")
    if not isinstance(answer, m.ArtifactUrl):
        raise LinkBroken(f"artifact {digest}: unexpected answer {answer.type}")
    await cloudapi.download(answer.url, dest, digest, agent.identity)


@contextlib.asynccontextmanager
async def open_agent(
    settings: EdgeSettings, identity: NodeIdentity | None = None
) -> AsyncIterator[Agent]:
    data = settings.data_dir
    identity = identity or load_identity(data)
    key = load_or_create_store_key(data / "pki" / "store.key")
    store = await open_edge_store(data / "state.db", secret_key=key)
    try:
        outbox = await open_outbox(
            data / "outbox.db",
            max_entries=settings.outbox.max_entries,
            max_bytes=settings.outbox.max_bytes,
        )
        try:
            async with contextlib.AsyncExitStack() as stack:
                yield await _start(settings, identity, store, outbox, stack)
        finally:
            await outbox.aclose()
    finally:
        await store.aclose()


async def _start(
    settings: EdgeSettings,
    identity: NodeIdentity,
    store: EdgeStore,
    outbox: Outbox,
    stack: contextlib.AsyncExitStack,
) -> Agent:
    data = settings.data_dir
    status_file = StatusFile(data)
    agent_ref: list[Agent] = []
    statuses: dict[str, dict[str, Any]] = {}

    def report(status: AppStatus) -> None:
        payload = status.to_payload()
        key = f"{status.namespace}/{status.name}"
        if status.namespace != SYSTEM_NAMESPACE:  # the node's own mappers: no App in the cloud
            outbox.append_nowait("app.status", payload, key=key)
        statuses[key] = {**payload, "app": key}
        status_file.update(apps=sorted(statuses.values(), key=lambda s: s["app"]))

    async def fetch(digest: str, dest: Path) -> None:
        await _fetch_artifact(agent_ref, digest, dest)

    opts = WsOptions(
        max_frame_bytes=settings.link.max_frame_bytes,
        ping_interval_s=settings.link.ping_interval_s,
        ping_timeout_s=settings.link.ping_timeout_s,
        open_timeout_s=settings.link.open_timeout_s,
    )
    mesh, relay_target = await _start_mesh(
        settings, identity, store, outbox, status_file, opts, stack
    )
    cache = ArtifactCache(data / "cache", fetch)
    runtime = Runtime(
        data,
        identity.node,
        cache,
        report,
        settings=settings.runtime,
        extra_env=mesh.app_env if mesh is not None else None,
    )
    stop_apps = settings.runtime.stop_apps_on_exit

    async def close_runtime() -> None:
        await runtime.aclose(stop_apps=stop_apps)

    stack.push_async_callback(close_runtime)
    link_state = LinkState()
    agent = Agent(identity, settings, store, outbox, runtime, link_state, status_file, mesh)
    agent_ref.append(agent)

    def on_link_change(state: LinkState) -> None:
        status_file.update(
            link={"state": state.state, "detail": state.detail, "connects": state.connects}
        )

    link_state.on_change = on_link_change
    status_file.update(
        node=identity.node,
        outbox={"entries": 0},
        objects=await store.count(),
        apps=[],
        link={"state": "starting"},
    )
    sync = Sync(store)
    boot_id = new_boot_id()

    def dial() -> contextlib.AbstractAsyncContextManager[Link]:
        return open_ws_link(identity.hub_url, identity.ssl_context(), opts)

    def heartbeat_info() -> tuple[int, int]:
        states = runtime.status()
        return (sum(s.phase == "Running" for s in states), sum(s.phase == "Failed" for s in states))

    def log_path(namespace: str, name: str) -> Path:
        return data / "apps" / namespace / name / "logs" / "app.log"

    def make_session(link: Link) -> LinkSession:
        return LinkSession(
            link,
            identity,
            settings.link,
            sync,
            outbox,
            log_path,
            link_state,
            heartbeat_info,
            boot_id,
            advertise_address=settings.mesh.advertise_address,
            on_relay_open=relay_target.on_open if relay_target is not None else None,
        )

    def on_session(session: LinkSession | None) -> None:
        agent.session = session

    async def apply_workload(
        apps: list[dict[str, Any]], configmaps: list[dict[str, Any]], secrets: list[dict[str, Any]]
    ) -> None:
        if mesh is not None:  # services first: apps started now get their EDGEWEAVE_SERVICE_*
            await mesh.refresh()
        system = agent.devices.mapper_apps if agent.devices is not None else []
        await runtime.apply([*apps, *system], configmaps, secrets)

    if mesh is not None:
        sync.mesh_changed = mesh.changed  # Services and Endpoints held → the mesh re-reads them
    tasks = [
        asyncio.create_task(reconcile_forever(sync, apply_workload), name="agent-reconcile"),
        asyncio.create_task(status_file.run(), name="agent-status-file"),
        asyncio.create_task(refresh_counts(store, outbox, status_file), name="agent-status-counts"),
        asyncio.create_task(
            run_link(dial, make_session, settings.link, link_state, on_session),
            name="agent-link",
        ),
    ]

    if settings.devices.enabled:
        tasks.append(asyncio.create_task(_devices(settings, agent, sync), name="agent-devices"))
    if settings.pipelines.enabled:
        tasks.append(asyncio.create_task(_pipelines(settings, agent, sync), name="agent-pipelines"))

    def report_end(task: asyncio.Task[None]) -> None:  # none of them ends on its own
        if not task.cancelled() and task.exception() is not None:
            log.error("agent task %s failed", task.get_name(), exc_info=task.exception())

    for t in tasks:
        t.add_done_callback(report_end)

    async def stop_tasks() -> None:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)  # failures: report_end
        status_file.update(link={"state": "stopped", "detail": time.ctime()})
        status_file.write_now()

    stack.push_async_callback(stop_tasks)
    return agent


async def _until_held(store: EdgeStore, changed: asyncio.Event, *kinds: str) -> None:
    """Until the local store holds an object of one of ``kinds``; ``changed`` is set by the
    sync when such objects change."""
    while not any([await store.count(kind) for kind in kinds]):
        await changed.wait()
        changed.clear()


async def _devices(settings: EdgeSettings, agent: Agent, sync: Sync) -> None:
    """The device side; its modules (the twin engine, MQTT) load only once the node holds a
    Device, so a node without devices stays lean."""
    await _until_held(agent.store, sync.devices_changed, "Device")
    from edgeweave.edge.devices.service import Devices, serve_devices

    agent.devices = devices = Devices()

    def on_bus(url: str) -> None:
        agent.status_file.update(bus={"url": url, "embedded": not settings.devices.mqtt_url})

    await serve_devices(
        agent.identity.node,
        settings.data_dir,
        settings.devices,
        agent.store,
        agent.outbox,
        sync.devices_changed,
        sync.device_objects,
        devices,
        on_bus=on_bus,
        on_mappers=sync.changed.set,
        wait_persisted=sync.wait_persisted,
    )


async def _pipelines(settings: EdgeSettings, agent: Agent, sync: Sync) -> None:
    """The pipeline host; its modules (the engine, the repo store) load only once the node
    holds a Pipeline or a Repo located on it."""
    await _until_held(agent.store, sync.pipelines_changed, "Pipeline", "Repo")
    from edgeweave.edge.pipelines.cloudcalls import CloudCalls
    from edgeweave.edge.pipelines.host import serve_pipelines

    def on_status(pipelines: dict[str, Any]) -> None:
        agent.status_file.update(pipelines=pipelines)

    await serve_pipelines(
        settings.data_dir,
        settings.pipelines,
        agent.store,
        agent.outbox,
        sync.pipelines_changed,
        on_status,
        CloudCalls(lambda: agent.session, agent.identity),
    )


async def _start_mesh(
    settings: EdgeSettings,
    identity: NodeIdentity,
    store: EdgeStore,
    outbox: Outbox,
    status_file: StatusFile,
    opts: WsOptions,
    stack: contextlib.AsyncExitStack,
) -> tuple[MeshHost | None, RelayTarget | None]:
    """The mesh (DNS, proxies, relay ends), when enabled; it reads only the local store."""
    if not settings.mesh.enabled:
        return None, None

    def report_paths(paths: Mapping[str, str]) -> None:
        outbox.append_nowait("node.status", {"mesh_paths": paths}, key="mesh")

    def on_status(status: dict[str, Any]) -> None:
        status_file.update(mesh=status)

    return await stack.enter_async_context(
        open_mesh_host(
            settings.mesh,
            identity.node,
            store,
            hub_url=identity.hub_url,
            ssl_context=cached_context(identity.ssl_context, identity.cert_path),
            ws_options=opts,
            report_paths=report_paths,
            on_status=on_status,
        )
    )


async def refresh_counts(
    store: EdgeStore, outbox: Outbox, status_file: StatusFile, interval_s: float = 1.0
) -> None:
    """Keep the status file's outbox and object counts fresh; a store error skips one round."""
    while True:
        try:
            objects = await store.count()
        except StoreError as e:
            log.warning("cannot count the held objects for the status file: %s", e)
        else:
            status_file.update(outbox={"entries": outbox.statistics().entries}, objects=objects)
        await asyncio.sleep(interval_s)  # a periodic status refresh, not synchronisation


async def run(settings: EdgeSettings) -> None:
    """`edgeweave edge run`: until SIGINT/SIGTERM."""
    loop = asyncio.get_running_loop()
    async with open_agent(settings) as agent:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, agent.request_stop)
        log.info("agent for node %s running; hub %s", agent.identity.node, agent.identity.hub_url)
        try:
            await agent.stopped.wait()
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
