"""The client config file: where the cloud is, the token, and the CA to trust.

The file is YAML (the cloud writes ``DATA/admin.yaml`` in this shape)::

    server: https://127.0.0.1:8443
    token: ew_...
    certificateAuthorityData: |        # PEM text; or certificateAuthority: /path/ca.crt
      -----BEGIN CERTIFICATE-----
      ...
    insecureSkipTLSVerify: false       # optional
    namespace: default                 # optional

Discovery order: an explicit path (``--config``), then ``$EDGEWEAVE_CONFIG``, then
``$XDG_CONFIG_HOME/edgeweave/config.yaml`` (``~/.config`` when XDG_CONFIG_HOME is unset).
This module reads files and builds an ``ssl.SSLContext``; it must not talk to the network.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeweave.errors import ConfigError

ENV_CONFIG = "EDGEWEAVE_CONFIG"
MAX_CONFIG_BYTES = 1024 * 1024
_HINT = (
    "start a cloud with `edgeweave cloud serve --data DATA` (it writes DATA/admin.yaml), "
    "then pass `--config DATA/admin.yaml` or set EDGEWEAVE_CONFIG"
)


@dataclass(frozen=True)
class ClientConfig:
    server: str
    token: str = ""
    ca_data: str = ""  # PEM text
    ca_file: str = ""
    insecure_skip_tls_verify: bool = False
    namespace: str = "default"
    source: str = ""  # the file it came from, for messages

    def ssl_context(self) -> ssl.SSLContext | bool:
        """What httpx's ``verify=`` gets: a context trusting only the configured CA (or the
        system's roots when none is configured, or False).

        Only the cloud's CA, not the system's roots besides: nothing else can vouch for the
        cloud, and not loading the system bundle saves every CLI call about 45 ms."""
        if self.insecure_skip_tls_verify:
            return False
        if not (self.ca_data or self.ca_file):
            return ssl.create_default_context()
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # checks the certificate and host name
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        try:
            if self.ca_data:
                ctx.load_verify_locations(cadata=self.ca_data)
            else:
                ctx.load_verify_locations(cafile=self.ca_file)
            return ctx
        except (ssl.SSLError, OSError, ValueError) as e:
            raise ConfigError(f"{self.source}: cannot load the certificate authority: {e}") from e

    def redacted(self) -> dict[str, Any]:
        """The config as a dict with the token hidden (for ``edgeweave config view``)."""
        out: dict[str, Any] = {"server": self.server, "namespace": self.namespace}
        out["token"] = (self.token[:6] + "...REDACTED") if self.token else ""
        if self.ca_file:
            out["certificateAuthority"] = self.ca_file
        if self.ca_data:
            out["certificateAuthorityData"] = "DATA+OMITTED"
        if self.insecure_skip_tls_verify:
            out["insecureSkipTLSVerify"] = True
        return out


def find_config_path(explicit: str | None = None, environ: Mapping[str, str] | None = None) -> Path:
    """The config file to use, following the discovery order; ConfigError when none exists."""
    env = os.environ if environ is None else environ
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise ConfigError(f"config file {explicit} does not exist; {_HINT}")
        return path
    from_env = env.get(ENV_CONFIG, "")
    if from_env:
        path = Path(from_env).expanduser()
        if not path.is_file():
            raise ConfigError(f"{ENV_CONFIG}={from_env} does not exist; {_HINT}")
        return path
    path = default_config_path(env)
    if not path.is_file():
        raise ConfigError(f"no client config found at {path}; {_HINT}")
    return path


def default_config_path(environ: Mapping[str, str]) -> Path:
    xdg = environ.get("XDG_CONFIG_HOME", "")
    base = Path(xdg) if xdg else Path(environ.get("HOME", "~")).expanduser() / ".config"
    return base / "edgeweave" / "config.yaml"


def load_config(
    explicit: str | None = None, environ: Mapping[str, str] | None = None
) -> ClientConfig:
    """Find, read and check the client config."""
    path = find_config_path(explicit, environ)
    try:
        with path.open("rb") as f:
            raw = f.read(MAX_CONFIG_BYTES + 1)
    except OSError as e:
        raise ConfigError(f"cannot read config {path}: {e.strerror}; {_HINT}") from e
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(f"config {path} is larger than {MAX_CONFIG_BYTES} bytes")
    return parse_config(raw.decode("utf-8", errors="replace"), source=str(path))


def parse_config(text: str, *, source: str = "<config>") -> ClientConfig:
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        data = yaml.load(text, Loader=loader)  # noqa: S506 - a safe loader
    except yaml.MarkedYAMLError as e:
        line = f":{e.problem_mark.line + 1}" if e.problem_mark is not None else ""
        raise ConfigError(f"{source}{line}: {e.problem}; {_HINT}") from e
    except yaml.YAMLError as e:
        raise ConfigError(f"{source}: {e}; {_HINT}") from e
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping with `server` and `token`; {_HINT}")
    server = data.get("server")
    if not isinstance(server, str) or not server.startswith(("https://", "http://")):
        raise ConfigError(f"{source}: `server` must be an http(s) URL, got {server!r}; {_HINT}")
    strings = {}
    for key in ("token", "certificateAuthorityData", "certificateAuthority", "namespace"):
        value = data.get(key, "")
        if value is None:
            value = ""
        if not isinstance(value, str):
            raise ConfigError(f"{source}: `{key}` must be a string")
        strings[key] = value
    insecure = data.get("insecureSkipTLSVerify", False)
    if not isinstance(insecure, bool):
        raise ConfigError(f"{source}: `insecureSkipTLSVerify` must be true or false")
    ca_file = strings["certificateAuthority"]
    if ca_file and not Path(ca_file).is_absolute():
        # relative to the config file, like kubeconfig
        ca_file = str(Path(source).parent / ca_file)
    return ClientConfig(
        server=server.rstrip("/"),
        token=strings["token"],
        ca_data=strings["certificateAuthorityData"],
        ca_file=ca_file,
        insecure_skip_tls_verify=insecure,
        namespace=strings["namespace"] or "default",
        source=source,
    )
