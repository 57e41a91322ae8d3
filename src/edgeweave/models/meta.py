"""Object metadata and the envelope every resource shares.

The envelope is ``apiVersion``, ``kind``, ``metadata``, ``spec``, ``status``. Stores keep
objects as plain JSON dicts; these models validate what users send and document the shape.
Server-owned metadata fields (uid, resourceVersion, generation, creationTimestamp) are
accepted on input and overwritten by the store.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

# DNS-1123 subdomain, as Kubernetes uses for object names.
NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
NAMESPACE_RE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
# label key: optional DNS prefix + "/" + name of at most 63 chars
LABEL_KEY_RE = re.compile(
    r"^([a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
)
LABEL_VALUE_RE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")

DEFAULT_NAMESPACE = "default"


def check_labels(labels: dict[str, str]) -> dict[str, str]:
    for key, value in labels.items():
        if not LABEL_KEY_RE.match(key):
            raise ValueError(f"label key {key!r} is not a valid label key")
        if not isinstance(value, str) or not LABEL_VALUE_RE.match(value):
            raise ValueError(f"label {key}={value!r}: value must be ≤ 63 chars of [A-Za-z0-9-_.]")
    return labels


class ObjectMeta(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    name: str
    namespace: str | None = None
    uid: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    resourceVersion: str | int | None = None
    generation: int | None = None
    creationTimestamp: str | None = None
    # accepted so manifests exported from Kubernetes-style tools apply unchanged
    generateName: str | None = None
    finalizers: list[str] = Field(default_factory=list)
    ownerReferences: list[dict[str, Any]] = Field(default_factory=list)
    deletionTimestamp: str | None = None
    managedFields: list[dict[str, Any]] = Field(default_factory=list)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not NAME_RE.match(v):
            raise ValueError(
                f"{v!r} is not a valid name: lowercase letters, digits, '-' and '.', "
                "starting and ending alphanumeric, at most 253 characters"
            )
        return v

    @field_validator("namespace")
    @classmethod
    def _namespace(cls, v: str | None) -> str | None:
        if v is not None and not NAMESPACE_RE.match(v):
            raise ValueError(f"{v!r} is not a valid namespace (DNS label, ≤ 63 chars)")
        return v

    @field_validator("labels")
    @classmethod
    def _labels(cls, v: dict[str, str]) -> dict[str, str]:
        return check_labels(v)


class Envelope(BaseModel):
    """The common outer shape; ``spec``/``status`` are validated per kind."""

    model_config = ConfigDict(extra="forbid")

    apiVersion: str
    kind: str
    metadata: ObjectMeta
    spec: Any = None
    status: Any = None
