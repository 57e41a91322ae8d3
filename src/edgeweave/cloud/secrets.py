"""Secrets encrypted at rest in the cloud: AES-256-GCM over each value of a Secret's ``data``.

Stored form of a ``Secret``: ``stringData`` is folded into ``data`` (base64, as Kubernetes
does when it applies a Secret), then every ``data`` value becomes
``"enc:v1:" + b64(nonce | ciphertext)``. The key is 32 random bytes in
``DATA/pki/secrets.key`` (hex, 0600), made on first start. Each value is bound to its object
and key by the associated data (``namespace/name/key``), so ciphertexts cannot be moved
between secrets or keys.

:class:`EncryptingStore` wraps the state store for the API: it encrypts on the way in and
decrypts on the way out (reads, lists, deletes and watch events), so no handler has to
remember. The hub uses :class:`SecretCodec` directly to decrypt before sending a Secret to a
node over TLS.

This module must not log or put secret values in error messages, and must not touch any
kind other than ``Secret``. It is the cloud's adapter for AES-GCM (``cryptography``).
"""

from __future__ import annotations

import base64
import binascii
import copy
import os
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from edgeweave.cloud.store.base import JSONObject, ListResult, Store, Watch, WatchEvent, WatchFilter
from edgeweave.errors import ConfigError, StoreError
from edgeweave.models.selectors import LabelSelector
from edgeweave.transport.certs import load_or_create_hex_key

SECRETS_KEY_FILE = "secrets.key"
PREFIX = "enc:v1:"
SECRET_KIND = "Secret"  # noqa: S105 (a kind name)
_NONCE_BYTES = 12


def load_or_create_secrets_key(pki_dir: Path) -> bytes:
    """The AES-256 key in ``pki_dir/secrets.key`` (hex text, 0600), made on first use."""
    return load_or_create_hex_key(pki_dir / SECRETS_KEY_FILE, what="secrets key", exact=True)


class SecretCodec:
    """Encrypts and decrypts the ``data`` of Secret objects; other kinds pass unchanged."""

    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise ConfigError("the secrets key must be 32 bytes")
        self._aead = AESGCM(key)

    def encrypt_object(self, obj: JSONObject) -> JSONObject:
        """The stored form of ``obj`` (a copy when it is a Secret; else ``obj`` itself)."""
        if obj.get("kind") != SECRET_KIND:
            return obj
        out = copy.copy(obj)
        data: dict[str, str] = dict(obj.get("data") or {})
        for key, text in (obj.get("stringData") or {}).items():
            data[key] = base64.b64encode(str(text).encode()).decode("ascii")
        out.pop("stringData", None)
        ns, name = _where(obj)
        # everything is sealed, even a value that looks sealed already: what arrives here is
        # always plain (the API validates base64; reads come back decrypted), and a forged
        # "enc:v1:" value must not be stored as if this cloud had sealed it
        out["data"] = {k: self._seal(v, f"{ns}/{name}/{k}") for k, v in data.items()}
        if not out["data"] and "data" not in obj:
            out.pop("data")
        return out

    def decrypt_object(self, obj: JSONObject) -> JSONObject:
        """The plain form of a stored object (a copy when it is an encrypted Secret)."""
        if obj.get("kind") != SECRET_KIND or not obj.get("data"):
            return obj
        out = copy.copy(obj)
        ns, name = _where(obj)
        out["data"] = {
            k: self._open(v, f"{ns}/{name}/{k}", ns, name) if v.startswith(PREFIX) else v
            for k, v in obj["data"].items()
        }
        return out

    def _seal(self, value: str, aad: str) -> str:
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, value.encode(), aad.encode())
        return PREFIX + base64.b64encode(nonce + sealed).decode("ascii")

    def _open(self, value: str, aad: str, ns: str, name: str) -> str:
        try:
            raw = base64.b64decode(value[len(PREFIX) :], validate=True)
            plain = self._aead.decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], aad.encode())
            return plain.decode()
        except (binascii.Error, ValueError, InvalidTag) as e:
            raise StoreError(
                f"cannot decrypt Secret {ns}/{name}: the value was not sealed with this cloud's "
                "DATA/pki/secrets.key (restored from another data dir?)"
            ) from e


def _where(obj: JSONObject) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace") or ""), str(meta.get("name") or "")


class _DecryptingWatch:
    def __init__(self, inner: Watch, codec: SecretCodec) -> None:
        self._inner = inner
        self._codec = codec

    async def __aiter__(self) -> AsyncIterator[WatchEvent]:
        async for event in self._inner:
            yield self._decrypted(event)

    async def next_event(self, idle_s: float) -> WatchEvent | None:
        event = await self._inner.next_event(idle_s)
        return None if event is None else self._decrypted(event)

    def _decrypted(self, event: WatchEvent) -> WatchEvent:
        if event.kind is not None and event.kind != SECRET_KIND:  # known without decoding
            return event
        obj = self._codec.decrypt_object(event.object)
        return event if obj is event.object else WatchEvent(event.type, obj, event.resource_version)


class EncryptingStore:
    """A :class:`~edgeweave.cloud.store.base.Store` that keeps Secrets encrypted in ``inner``."""

    def __init__(self, inner: Store, codec: SecretCodec) -> None:
        self.inner = inner
        self.codec = codec

    async def create(self, obj: JSONObject) -> JSONObject:
        return self.codec.decrypt_object(await self.inner.create(self.codec.encrypt_object(obj)))

    async def get(self, kind: str, namespace: str, name: str) -> JSONObject:
        return self.codec.decrypt_object(await self.inner.get(kind, namespace, name))

    async def list(
        self,
        kind: str,
        namespace: str | None = None,
        selector: LabelSelector | None = None,
        *,
        limit: int | None = None,
        continue_token: str | None = None,
    ) -> ListResult:
        result = await self.inner.list(
            kind, namespace, selector, limit=limit, continue_token=continue_token
        )
        if kind != SECRET_KIND:
            return result
        items = [self.codec.decrypt_object(i) for i in result.items]
        return ListResult(items, result.resource_version, result.continue_token)

    async def update(self, obj: JSONObject) -> JSONObject:
        return self.codec.decrypt_object(await self.inner.update(self.codec.encrypt_object(obj)))

    async def delete(
        self, kind: str, namespace: str, name: str, *, resource_version: int | None = None
    ) -> JSONObject:
        deleted = await self.inner.delete(kind, namespace, name, resource_version=resource_version)
        return self.codec.decrypt_object(deleted)

    async def current_resource_version(self) -> int:
        return await self.inner.current_resource_version()

    def open_watch(
        self, since: int, flt: WatchFilter | None = None
    ) -> AbstractAsyncContextManager[Watch]:
        return self._watch(since, flt)

    @asynccontextmanager
    async def _watch(self, since: int, flt: WatchFilter | None) -> AsyncIterator[Watch]:
        async with self.inner.open_watch(since, flt) as watch:
            yield _DecryptingWatch(watch, self.codec)

    async def compact(self, keep_last: int) -> int:
        return await self.inner.compact(keep_last)

    async def aclose(self) -> None:
        await self.inner.aclose()
