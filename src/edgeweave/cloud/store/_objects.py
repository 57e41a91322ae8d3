"""Backend-independent object logic shared by the store adapters.

What every backend does the same way: deriving an object's key, stamping server-owned
metadata on create and update (uid, creationTimestamp, generation, resourceVersion), the
compare-and-set check, the JSON encoding kept in the database, the opaque continue token of a
paged list, and the text of the ``Gone`` error.

Pure functions only: this module must not do I/O and must not import a database library.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from datetime import UTC, datetime
from typing import Any

from edgeweave.cloud.store.base import JSONObject
from edgeweave.errors import BadRequest, Conflict, Gone, InvalidObject

ObjectKey = tuple[str, str, str]  # (kind, namespace, name); namespace "" = cluster-scoped

_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)
MAX_CONTINUE_TOKEN_CHARS = 2048


def encode_json(obj: JSONObject) -> str:
    """Compact JSON text as stored in the database."""
    return _ENCODER.encode(obj)


def encode_json_around_rv(obj: JSONObject) -> tuple[str, str]:
    """``obj``'s stored JSON cut where the digits of ``metadata.resourceVersion`` go, so the
    database can assign the version and write the object in one statement: the stored text
    is ``head + str(rv) + tail``, exactly ``encode_json`` of ``obj`` stamped with ``rv``."""
    while True:
        marker = uuid.uuid4().hex  # random: found in user content only by (astronomical) chance
        text = encode_json({**obj, "metadata": {**obj["metadata"], "resourceVersion": marker}})
        head, _, tail = text.partition(f'"{marker}"')
        if marker not in head and marker not in tail:
            return head + '"', '"' + tail


def decode_json(text: str) -> JSONObject:
    value: JSONObject = json.loads(text)
    return value


def object_key(obj: JSONObject) -> ObjectKey:
    """``(kind, namespace, name)`` of ``obj``; raises InvalidObject when one is missing."""
    if not isinstance(obj, dict):
        raise InvalidObject("object must be a JSON object")
    kind = obj.get("kind")
    if not isinstance(kind, str) or not kind:
        raise InvalidObject("kind is required", field="kind")
    meta = obj.get("metadata")
    if not isinstance(meta, dict):
        raise InvalidObject("metadata is required", field="metadata")
    name = meta.get("name")
    if not isinstance(name, str) or not name:
        raise InvalidObject("metadata.name is required", field="metadata.name")
    namespace = meta.get("namespace") or ""
    if not isinstance(namespace, str):
        raise InvalidObject("metadata.namespace must be a string", field="metadata.namespace")
    return kind, namespace, name


def describe(key: ObjectKey) -> str:
    kind, namespace, name = key
    return f"{kind} {namespace}/{name}" if namespace else f"{kind} {name}"


def now_rfc3339() -> str:
    """The current time as RFC 3339 UTC with a ``Z`` suffix, whole seconds."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_resource_version(value: Any, *, what: str = "metadata.resourceVersion") -> int | None:
    """``None`` for absent/empty, else the integer; raises BadRequest for anything else."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise BadRequest(f"{what} must be a decimal integer, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    raise BadRequest(f"{what} must be a decimal integer, got {value!r}")


def check_cas(key: ObjectKey, stored_rv: int, wanted_rv: int | None) -> None:
    """Raise Conflict when ``wanted_rv`` is given and differs from ``stored_rv``."""
    if wanted_rv is not None and wanted_rv != stored_rv:
        raise Conflict(
            f"{describe(key)} was modified: resourceVersion is {stored_rv}, not {wanted_rv}; "
            "get the latest version and retry"
        )


def prepare_create(obj: JSONObject, rv: int) -> JSONObject:
    """A copy of ``obj`` with fresh server metadata (caller's dict is not modified)."""
    out = dict(obj)
    meta = dict(obj["metadata"])
    meta["uid"] = str(uuid.uuid4())
    meta["creationTimestamp"] = now_rfc3339()
    meta["generation"] = 1
    meta["resourceVersion"] = str(rv)
    out["metadata"] = meta
    return out


def prepare_update(obj: JSONObject, stored: JSONObject, rv: int) -> JSONObject:
    """A copy of ``obj`` replacing ``stored``: uid/creationTimestamp kept, generation +1 when
    spec changed. The CAS check is the caller's (it knows the stored row's version)."""
    old_meta = stored.get("metadata", {})
    out = dict(obj)
    meta = dict(obj["metadata"])
    meta["uid"] = old_meta.get("uid")
    meta["creationTimestamp"] = old_meta.get("creationTimestamp")
    generation = int(old_meta.get("generation") or 1)
    if obj.get("spec") != stored.get("spec"):
        generation += 1
    meta["generation"] = generation
    meta["resourceVersion"] = str(rv)
    out["metadata"] = meta
    return out


def prepare_delete(stored: JSONObject, rv: int) -> JSONObject:
    """The deleted object as reported: as it was, with the deleting write's version."""
    out = dict(stored)
    meta = dict(stored.get("metadata", {}))
    meta["resourceVersion"] = str(rv)
    out["metadata"] = meta
    return out


def encode_continue(kind: str, namespace: str | None, after: tuple[str, str]) -> str:
    """An opaque token: the list resumes after key ``after`` = (namespace, name)."""
    raw = _ENCODER.encode({"k": kind, "n": namespace, "a": list(after)})
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_continue(token: str, kind: str, namespace: str | None) -> tuple[str, str]:
    """The (namespace, name) to resume after; BadRequest when the token is not one of ours or
    was issued for another list."""
    bad = BadRequest("invalid continue token: pass back the token of the previous page as is")
    if not isinstance(token, str) or not token or len(token) > MAX_CONTINUE_TOKEN_CHARS:
        raise bad
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        data = json.loads(raw)
    except (binascii.Error, ValueError) as e:
        raise bad from e
    if not isinstance(data, dict):
        raise bad
    after = data.get("a")
    if (
        data.get("k") != kind
        or data.get("n") != namespace
        or not isinstance(after, list)
        or len(after) != 2
        or not all(isinstance(part, str) for part in after)
    ):
        raise bad
    return after[0], after[1]


def gone(since: int, oldest: int) -> Gone:
    return Gone(
        f"resourceVersion {since} is too old (oldest retained {oldest}); "
        "relist and watch from the list's resourceVersion"
    )
