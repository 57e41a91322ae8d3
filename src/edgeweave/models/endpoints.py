"""The ``Endpoints`` kind: where a Service's traffic can go, kept by the cloud (read-only).

One object per Service, with the Service's name. Each entry is one running instance of a
selected App on one node: the node, its advertised address (empty when the node advertises
none: only the relay reaches it), whether the instance is healthy, and for each service port
the port the instance listens on (``targetPort`` resolved against the App's named ports).
``status.paths`` holds what consuming nodes report: ``{consumer: {endpoint node: direct|relay}}``.

Users read these objects; the cloud's endpoints controller writes them and the hub sends them
to every node that receives the Service. Shape only: this module must not compute endpoints.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from edgeweave.models.base import Port, Resource, StrictModel

EndpointPath = Literal["direct", "relay"]


class EndpointPort(StrictModel):
    name: str | None = None
    port: Port
    """The service port."""
    targetPort: Port
    """The port the App instance listens on."""


class EndpointEntry(StrictModel):
    node: str
    app: str
    address: str = ""
    ready: bool = False
    ports: list[EndpointPort] = Field(default_factory=list)


class EndpointsStatus(StrictModel):
    paths: dict[str, dict[str, EndpointPath]] = Field(default_factory=dict)


class Endpoints(Resource):
    apiVersion: Literal["edgeweave.io/v1"]
    kind: Literal["Endpoints"]
    endpoints: list[EndpointEntry] = Field(default_factory=list)
    status: EndpointsStatus | None = None
