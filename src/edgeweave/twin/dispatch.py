"""One incoming bus message, end to end: topic + payload + twin in, new twin + replies out.

The agent's bus calls :func:`handle_device_message` for each ``twin/update``, ``twin/get``
and ``state/update`` it receives and :func:`handle_membership_get` for ``membership/get``,
stores the returned twin (when not ``None``) and publishes the returned
:class:`Publication` values in order. These functions **never raise**: a bad payload, an
unknown device or a bug in this package becomes the KubeEdge error result
``{"event_id","timestamp","code","reason"}`` on the request's result topic, and the
:class:`~edgeweave.twin.errors.TwinError` is returned too so the bus can log it.

For changes that do not come from the bus (a desired value from the cloud, a merge after a
partition) the host calls :func:`publications` on the :class:`~.state.TwinChange`.

Must not do I/O: it does not publish, store or read a clock.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from edgeweave.twin import payloads
from edgeweave.twin.errors import INTERNAL, TwinError, not_found
from edgeweave.twin.messages import (
    ErrorResult,
    MembershipDevice,
    MembershipGet,
    MembershipGetResult,
    StateUpdate,
    TwinGet,
    TwinUpdate,
)
from edgeweave.twin.state import (
    DeviceTwin,
    TwinChange,
    apply_state,
    apply_update,
    get_result,
    last_online_time,
)
from edgeweave.twin.topics import DeviceAction, DeviceTopic, NodeAction, NodeTopic, node_topic
from edgeweave.twin.wire import MAX_PAYLOAD_BYTES


@dataclass(frozen=True, slots=True)
class Publication:
    topic: str
    payload: bytes


@dataclass(frozen=True, slots=True)
class Handled:
    """``twin``: the device's new twin to store (``None``: unchanged); ``error``: why the
    request got an error result, for the log."""

    twin: DeviceTwin | None
    publications: tuple[Publication, ...]
    error: TwinError | None = None


# the result topic of each request topic
_RESULT_OF = {
    DeviceAction.TWIN_UPDATE: DeviceAction.TWIN_UPDATE_RESULT,
    DeviceAction.TWIN_GET: DeviceAction.TWIN_GET_RESULT,
    DeviceAction.STATE_UPDATE: DeviceAction.STATE_UPDATE_RESULT,
}


def publications(change: TwinChange, *, short_form: bool = False) -> tuple[Publication, ...]:
    """The topics and payloads of what a change says to publish, in order."""
    device = change.twin.device
    topic = DeviceTopic(device, DeviceAction.TWIN_UPDATE, short_form=short_form)
    return tuple(
        Publication(topic.reply(action), payloads.encode(message))
        for action, message in change.messages()
    )


def _as_twin_error(error: Exception) -> TwinError:
    if isinstance(error, TwinError):
        return error
    wrapped = TwinError(INTERNAL, f"internal error handling the request: {error!r}")
    wrapped.__cause__ = error
    return wrapped


def _error_reply(topic: str, payload: bytes, error: TwinError, now_ms: int) -> Publication:
    result = ErrorResult(payloads.event_id_of(payload), now_ms, error.code, error.message)
    return Publication(topic, payloads.encode(result))


def _apply(
    topic: DeviceTopic, payload: bytes, twin: DeviceTwin | None, now_ms: int, max_bytes: int
) -> Handled:
    message = payloads.decode(topic.action, payload, max_bytes=max_bytes)
    if isinstance(message, TwinGet):
        reply = get_result(twin, message, now_ms)
        return Handled(
            None, (Publication(topic.reply(DeviceAction.TWIN_GET_RESULT), payloads.encode(reply)),)
        )
    if twin is None:
        raise not_found(f"{topic.device} is not a device of this node")
    if isinstance(message, TwinUpdate):
        change = apply_update(twin, message, now_ms)
    elif isinstance(message, StateUpdate):
        change = apply_state(twin, message, now_ms)
    else:  # pragma: no cover - decode returns the request class of each request action
        raise TwinError(INTERNAL, f"unexpected {type(message).__name__} on {topic.action}")
    return Handled(change.twin, publications(change, short_form=topic.short_form))


def handle_device_message(
    topic: DeviceTopic,
    payload: bytes,
    twin: DeviceTwin | None,
    now_ms: int,
    *,
    max_bytes: int = MAX_PAYLOAD_BYTES,
) -> Handled:
    """Handle a request on a device topic; ``twin`` is ``None`` for an unknown device.

    Messages the agent itself publishes (results, deltas, documents) are ignored.
    """
    result_action = _RESULT_OF.get(topic.action)
    if result_action is None:
        return Handled(None, ())
    try:
        return _apply(topic, payload, twin, now_ms, max_bytes)
    except Exception as e:  # the bus must survive any payload: answer it
        error = _as_twin_error(e)
        return Handled(
            None, (_error_reply(topic.reply(result_action), payload, error, now_ms),), error
        )


def membership_device(
    twin: DeviceTwin, *, description: str = "", attributes: Mapping[str, str] | None = None
) -> MembershipDevice:
    """A device as membership payloads list it (``id`` is ``{namespace}/{name}``)."""
    return MembershipDevice(
        id=f"{twin.device.namespace}/{twin.device.name}",
        name=twin.device.name,
        description=description,
        state=twin.state,
        last_online=last_online_time(twin.last_online_ms),
        attributes=dict(attributes or {}),
    )


def handle_membership_get(
    topic: NodeTopic,
    payload: bytes,
    devices: Sequence[MembershipDevice],
    now_ms: int,
    *,
    max_bytes: int = MAX_PAYLOAD_BYTES,
) -> Handled:
    """Answer ``membership/get`` with the node's ``devices``; other node topics are ignored."""
    if topic.action is not NodeAction.MEMBERSHIP_GET:
        return Handled(None, ())
    reply_topic = node_topic(topic.node, NodeAction.MEMBERSHIP_GET_RESULT)
    try:
        request = payloads.decode(topic.action, payload, max_bytes=max_bytes)
        reply = MembershipGetResult(
            request.event_id if isinstance(request, MembershipGet) else "", now_ms, list(devices)
        )
        return Handled(None, (Publication(reply_topic, payloads.encode(reply)),))
    except Exception as e:  # the bus must survive any payload: answer it
        error = _as_twin_error(e)
        return Handled(None, (_error_reply(reply_topic, payload, error, now_ms),), error)
