"""The mappers a node's devices need, as system apps the runtime supervises.

For each device protocol with a built-in mapper (``modbus``, ``virtual``) the agent writes a
config file ``<data>/mappers/<protocol>.json`` — ``{"node", "protocol", "devices": [{"device",
"model"}]}`` with the Device and DeviceModel objects of that protocol — and runs
``python -m edgeweave mapper run PROTOCOL --mqtt URL --node NODE --config FILE`` as an App
in the ``edgeweave-system`` namespace (restart Always, logs and supervision as any app). A
changed file is followed by ``membership/updated`` on the bus, on which the mapper reloads it;
desired values, versions and status are left out of the file, so a ``twin set`` does not
make a mapper reload (it gets the value as a delta).
Devices of other protocols are left to the user's own mappers (KubeEdge mappers connect to
the same bus). Status of system apps stays on the node (the cloud has no such App).

Must not talk MQTT or apply twin rules.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Final

from edgeweave.edge.devices import SYSTEM_NAMESPACE
from edgeweave.edge.devices.info import DeviceInfo
from edgeweave.protocol.refs import ResourceRef
from edgeweave.transport.certs import write_file_atomic

log = logging.getLogger(__name__)

BUILT_IN: Final = frozenset({"modbus", "virtual"})


_VOLATILE_META = ("resourceVersion", "generation", "creationTimestamp", "managedFields")


def _config_of(obj: Mapping[str, Any]) -> dict[str, Any]:
    """``obj`` without what changes when nothing a mapper reads changed: status, versions and
    desired values (those reach the mapper as deltas; a rewrite would make it reload)."""
    out = {k: v for k, v in obj.items() if k != "status"}
    meta = out.get("metadata")
    if isinstance(meta, Mapping):
        out["metadata"] = {k: v for k, v in meta.items() if k not in _VOLATILE_META}
    spec = out.get("spec")
    if isinstance(spec, Mapping) and isinstance(spec.get("properties"), list):
        props = [
            {k: v for k, v in p.items() if k != "desired"} if isinstance(p, Mapping) else p
            for p in spec["properties"]
        ]
        out["spec"] = {**spec, "properties": props}
    return out


class MapperApps:
    def __init__(
        self, data_dir: Path, node: str, bus_url: Callable[[], str], *, python: str = ""
    ) -> None:
        self._dir = data_dir / "mappers"
        self._node = node
        self._bus_url = bus_url
        self._python = python or sys.executable
        self._entries: dict[ResourceRef, tuple[str, str]] = {}  # (protocol, entry JSON)
        self._written: dict[str, bytes] = {}  # protocol -> the file's content, compact
        self._unserved: set[str] = set()

    def update(
        self, infos: Mapping[ResourceRef, DeviceInfo], touched: set[ResourceRef] | None = None
    ) -> bool:
        """Write the config file of each protocol in use; ``touched``: only these devices
        may have changed (None: any). True when a file changed or a protocol came or went
        (the runtime must then be reconciled).

        Each device's part of its file is kept as JSON, so a change costs the encoding of
        the devices it touched, not of every device of the protocol (a ``twin set`` changes
        nothing here: desired values are left out)."""
        if touched is None:
            touched = set(infos) | set(self._entries)
        dirty: set[str] = set()  # protocols whose file must be built again
        for ref in touched:
            info = infos.get(ref)
            old = self._entries.pop(ref, None)
            entry = None if info is None else self._entry(ref, info)
            if entry is not None:
                self._entries[ref] = entry
            if entry != old:
                dirty |= {e[0] for e in (entry, old) if e is not None}
        if not dirty:
            return False
        by_protocol: dict[str, list[tuple[str, str]]] = {}
        for ref, (protocol, text) in self._entries.items():
            if protocol in dirty:
                by_protocol.setdefault(protocol, []).append((str(ref), text))
        changed = False
        for protocol in sorted(dirty):
            entries = by_protocol.get(protocol)
            if not entries:  # its last device went
                changed = self._written.pop(protocol, None) is not None or changed
                continue
            devices = ",".join(text for _ref, text in sorted(entries))
            head = json.dumps({"node": self._node, "protocol": protocol}, sort_keys=True)
            data = f'{{"devices":[{devices}],{head[1:]}'.encode()
            if self._written.get(protocol) != data:
                self._dir.mkdir(parents=True, exist_ok=True)
                pretty = json.dumps(json.loads(data), indent=1, sort_keys=True).encode()
                write_file_atomic(self.config_path(protocol), pretty)
                self._written[protocol] = data
                changed = True
        return changed

    def _entry(self, ref: ResourceRef, info: DeviceInfo) -> tuple[str, str] | None:
        if info.protocol not in BUILT_IN:
            if info.protocol not in self._unserved:
                self._unserved.add(info.protocol)
                log.info("no built-in mapper for protocol %r (device %s)", info.protocol, ref)
            return None
        entry = {"device": _config_of(info.device), "model": _config_of(info.model)}
        return info.protocol, json.dumps(entry, separators=(",", ":"), sort_keys=True)

    def config_path(self, protocol: str) -> Path:
        return self._dir / f"{protocol}.json"

    def apps(self) -> list[dict[str, Any]]:
        """The App objects of the mappers in use."""
        return [self._app(protocol) for protocol in sorted(self._written)]

    def _app(self, protocol: str) -> dict[str, Any]:
        run = [
            self._python, "-m", "edgeweave", "mapper", "run", protocol,
            "--mqtt", self._bus_url(), "--node", self._node,
            "--config", str(self.config_path(protocol)),
        ]  # fmt: skip
        return {
            "apiVersion": "edgeweave.io/v1",
            "kind": "App",
            "metadata": {"name": f"mapper-{protocol}", "namespace": SYSTEM_NAMESPACE},
            "spec": {"lifecycle": {"run": run}, "restartPolicy": "Always"},
        }
