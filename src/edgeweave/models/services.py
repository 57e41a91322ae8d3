"""The ``Service`` kind: a stable name in front of App instances, with load balancing.

Shape only: which apps it selects, which ports it exposes, how connections are spread. The
mesh resolves and proxies; this module must not look up endpoints or open sockets.
"""

from __future__ import annotations

from typing import Any, Literal, cast

from pydantic import Field, field_validator, model_validator

from edgeweave.models.apps import PORT_NAME_RE, Protocol
from edgeweave.models.base import Port, Resource, StrictModel, duplicates, raise_problems
from edgeweave.models.meta import check_labels

LoadBalancing = Literal["RoundRobin", "Random", "ConsistentHash"]
SessionAffinity = Literal["None", "ClientIP"]


class ServicePort(StrictModel):
    """``targetPort`` (a number, or the name of a port in the App) defaults to ``port``."""

    name: str | None = None
    port: Port
    targetPort: Any = None
    protocol: Protocol = "TCP"

    @field_validator("name")
    @classmethod
    def _name(cls, v: str | None) -> str | None:
        if v is not None and not PORT_NAME_RE.match(v):
            raise ValueError(f"port name {v!r} is invalid: lowercase letters, digits and '-'")
        return v

    @field_validator("targetPort")
    @classmethod
    def _target(cls, v: Any) -> Any:
        if v is None or (isinstance(v, str) and PORT_NAME_RE.match(v)):
            return v
        if isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 65535:
            return v
        raise ValueError(f"targetPort {v!r} must be 1..65535 or the name of a port of the app")

    def target(self) -> int | str:
        return self.port if self.targetPort is None else cast("int | str", self.targetPort)


class ConsistentHash(StrictModel):
    key: Literal["source", "header"] = "source"
    header: str | None = None

    @model_validator(mode="after")
    def _header(self) -> ConsistentHash:
        if self.key == "header" and not self.header:
            raise_problems([("header", "required when key is 'header' (the header to hash)")])
        if self.key == "source" and self.header:
            raise_problems([("header", "only used when key is 'header'")])
        return self


class ServiceSpec(StrictModel):
    selector: dict[str, str]
    ports: list[ServicePort] = Field(min_length=1)
    loadBalancing: LoadBalancing = "RoundRobin"
    sessionAffinity: SessionAffinity | None = None
    consistentHash: ConsistentHash | None = None

    @field_validator("selector")
    @classmethod
    def _selector(cls, v: dict[str, str]) -> dict[str, str]:
        if not v:
            raise ValueError("must select at least one label, e.g. {app: my-app}")
        return check_labels(v)

    @model_validator(mode="after")
    def _cross_fields(self) -> ServiceSpec:
        problems: list[tuple[str, str]] = []
        names = [p.name for p in self.ports]
        if len(self.ports) > 1:
            for i, name in enumerate(names):
                if name is None:
                    problems.append((f"ports[{i}].name", "required when there are several ports"))
        for i in duplicates([n or f"\0{j}" for j, n in enumerate(names)]):
            problems.append((f"ports[{i}].name", "duplicate port name"))
        for i in duplicates([f"{p.port}/{p.protocol}" for p in self.ports]):
            problems.append((f"ports[{i}].port", "the same port and protocol appear twice"))
        if self.consistentHash is not None and self.loadBalancing != "ConsistentHash":
            problems.append(("consistentHash", "only used with loadBalancing: ConsistentHash"))
        raise_problems(problems)
        return self


class Service(Resource):
    apiVersion: Literal["edgeweave.io/v1"]
    kind: Literal["Service"]
    spec: ServiceSpec
    status: dict[str, Any] | None = None
