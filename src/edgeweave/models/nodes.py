"""The ``Node`` kind (cluster-scoped): an edge machine registered by ``edgeweave edge join``.

Users write little of it (``spec.unschedulable``, ``spec.taints``); the cloud writes
``status``. Both parts keep unknown fields so a newer agent's status is never rejected. This
module must not decide readiness: it only describes the shape.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from edgeweave.models.base import OpenModel, Resource

NodePhase = Literal["Ready", "NotReady", "Unknown"]
TaintEffect = Literal["NoSchedule", "PreferNoSchedule", "NoExecute"]
ConditionStatus = Literal["True", "False", "Unknown"]


class Taint(OpenModel):
    key: str = Field(min_length=1)
    value: str | None = None
    effect: TaintEffect


class NodeSpec(OpenModel):
    unschedulable: bool | None = None
    taints: list[Taint] | None = None


class NodeCondition(OpenModel):
    type: str
    status: ConditionStatus
    reason: str | None = None
    message: str | None = None
    lastHeartbeatTime: str | None = None
    lastTransitionTime: str | None = None


class NodeAddress(OpenModel):
    type: str
    address: str


class NodeStatus(OpenModel):
    phase: NodePhase | None = None
    conditions: list[NodeCondition] | None = None
    lastHeartbeat: str | None = None
    capacity: dict[str, Any] | None = None
    addresses: list[NodeAddress] | None = None
    agentVersion: str | None = None
    connectionOwner: str | None = None


class Node(Resource):
    apiVersion: Literal["edgeweave.io/v1"]
    kind: Literal["Node"]
    spec: NodeSpec | None = None
    status: NodeStatus | None = None
