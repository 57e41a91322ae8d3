"""The edge agent's local store on real SQLite files: atomic batches, the held set and its
digest, secrets encrypted at rest, the store key file, meta and paged listing."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from edgeweave.edge.store import PAGE_ROWS, EdgeStore, load_or_create_store_key, open_edge_store
from edgeweave.errors import ConfigError, InvalidObject, NotFound, StoreError
from edgeweave.protocol.refs import ResourceRef, Versioned, held_digest

KEY = bytes(range(32))


def app(name: str, namespace: str = "default", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "edgeweave.io/v1",
        "kind": "App",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


def ref_of(obj: dict[str, Any]) -> ResourceRef:
    return ResourceRef.of(obj)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[EdgeStore]:
    s = await open_edge_store(tmp_path / "store.db", secret_key=KEY)
    yield s
    await s.aclose()


async def test_apply_batch_upserts_and_deletes_are_read_back(store: EdgeStore) -> None:
    a, b = app("a", replicas=1), app("b")
    await store.apply_batch([(ref_of(a), 5, a), (ref_of(b), 6, b)], [])
    assert await store.get(ref_of(a)) == a
    assert await store.count() == 2

    await store.apply_batch([], [Versioned(ref_of(a), 7)])
    with pytest.raises(NotFound):
        await store.get(ref_of(a))
    assert await store.list() == [b]


async def test_a_failing_batch_leaves_nothing_behind(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    s = await open_edge_store(path, secret_key=KEY)
    keep = app("keep")
    await s.apply_batch([(ref_of(keep), 1, keep)], [])
    # make SQLite itself fail in the middle of the next batch's transaction
    with sqlite3.connect(path) as raw:
        raw.execute(
            "CREATE TRIGGER boom BEFORE INSERT ON objects WHEN NEW.name = 'boom' "
            "BEGIN SELECT RAISE(ABORT, 'injected failure'); END"
        )
    raw.close()
    batch = [(ref_of(o), 10 + i, o) for i, o in enumerate([app("x"), app("y"), app("boom")])]
    with pytest.raises(StoreError):
        await s.apply_batch(batch, [Versioned(ref_of(keep), 9)])
    assert [o["metadata"]["name"] for o in await s.list()] == ["keep"]
    assert await s.held() == [Versioned(ref_of(keep), 1)]
    await s.aclose()


async def test_an_invalid_object_is_refused_before_anything_is_written(store: EdgeStore) -> None:
    good, wrong = app("good"), app("other")
    with pytest.raises(InvalidObject):
        await store.apply_batch(
            [(ref_of(good), 1, good), (ResourceRef("App", "default", "x"), 2, wrong)], []
        )
    with pytest.raises(InvalidObject):
        await store.apply_batch([(ref_of(good), -1, good)], [])
    assert await store.count() == 0


async def test_the_highest_rv_wins_within_one_batch(store: EdgeStore) -> None:
    a = app("a")
    await store.apply_batch([(ref_of(a), 5, a)], [Versioned(ref_of(a), 6)])
    assert await store.count() == 0
    await store.apply_batch([(ref_of(a), 8, a)], [Versioned(ref_of(a), 7)])
    assert await store.held() == [Versioned(ref_of(a), 8)]


async def test_held_digest_matches_the_protocol_definition(store: EdgeStore) -> None:
    # names chosen so that sorting lines differs from sorting (kind, namespace, name) tuples
    objs = [app("b", "a-x"), app("z", "a"), app("a", "a"), app("n", "ä"), app("q", "")]
    objs[-1]["metadata"].pop("namespace")
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "a"}}
    objs.append(cm)
    await store.apply_batch([(ref_of(o), 100 + i, o) for i, o in enumerate(objs)], [])
    held = await store.held()
    assert sorted((v.ref.kind, v.ref.namespace, v.ref.name) for v in held) == [
        (v.ref.kind, v.ref.namespace, v.ref.name) for v in held
    ]
    assert {v.rv for v in held} == set(range(100, 106))
    assert await store.held_digest() == held_digest(held)
    # the cached digest is dropped on write
    await store.apply_batch([], [Versioned(ref_of(cm), 200)])
    assert await store.held_digest() == held_digest(await store.held())
    assert await store.held_digest() != held_digest(held)


async def test_empty_store_digest_is_the_digest_of_nothing(store: EdgeStore) -> None:
    assert await store.held_digest() == held_digest([])


async def test_secrets_are_encrypted_on_disk_and_readable_through_the_store(
    tmp_path: Path,
) -> None:
    path = tmp_path / "store.db"
    s = await open_edge_store(path, secret_key=KEY)
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "db", "namespace": "default"},
        "data": {"password": "c3VwZXItc2VjcmV0LXBhc3N3b3Jk"},
        "stringData": {"token": "plaintext-token-4711", "n": 42},
    }
    await s.apply_batch([(ref_of(secret), 3, secret)], [])
    assert await s.get(ref_of(secret)) == secret
    assert await s.list(kind="Secret") == [secret]
    await s.aclose()

    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("store.db"))
    for plaintext in (b"c3VwZXItc2VjcmV0LXBhc3N3b3Jk", b"plaintext-token-4711"):
        assert plaintext not in raw
    assert b"password" in raw  # key names stay readable

    s = await open_edge_store(path, secret_key=bytes(32))
    with pytest.raises(StoreError, match="store key does not match"):
        await s.get(ref_of(secret))
    await s.aclose()


async def test_a_sealed_value_cannot_be_moved_to_another_secret(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    s = await open_edge_store(path, secret_key=KEY)
    one = {"kind": "Secret", "metadata": {"name": "one", "namespace": "d"}, "data": {"k": "v1"}}
    two = {"kind": "Secret", "metadata": {"name": "two", "namespace": "d"}, "data": {"k": "v2"}}
    await s.apply_batch([(ref_of(one), 1, one), (ref_of(two), 2, two)], [])
    await s.aclose()
    with sqlite3.connect(path) as raw:
        sealed = raw.execute("SELECT json FROM objects WHERE name = 'one'").fetchone()[0]
        raw.execute(
            "UPDATE objects SET json = ? WHERE name = 'two'", (sealed.replace('"one"', '"two"'),)
        )
    raw.close()
    s = await open_edge_store(path, secret_key=KEY)
    assert (await s.get(ref_of(one)))["data"] == {"k": "v1"}
    with pytest.raises(StoreError):
        await s.get(ref_of(two))
    await s.aclose()


@pytest.mark.parametrize("damage", ["not base64 at all!", "QUJD", ""])
async def test_a_damaged_sealed_value_is_a_store_error(tmp_path: Path, damage: str) -> None:
    path = tmp_path / "store.db"
    s = await open_edge_store(path, secret_key=KEY)
    one = {"kind": "Secret", "metadata": {"name": "one", "namespace": "d"}, "data": {"k": "v1"}}
    await s.apply_batch([(ref_of(one), 1, one)], [])
    await s.aclose()
    with sqlite3.connect(path) as raw:
        stored = json.loads(raw.execute("SELECT json FROM objects").fetchone()[0])
        prefix = stored["data"]["k"].split(":", 1)[0] + ":"
        stored["data"]["k"] = prefix + damage
        raw.execute("UPDATE objects SET json = ?", (json.dumps(stored),))
    raw.close()
    s = await open_edge_store(path, secret_key=KEY)
    try:
        with pytest.raises(StoreError, match="damaged"):
            await s.get(ref_of(one))
    finally:
        await s.aclose()


async def test_list_pages_through_more_than_one_page_and_filters(store: EdgeStore) -> None:
    n = PAGE_ROWS * 2 + 7
    objs = [app(f"a{i:04d}", "ns1" if i % 2 else "ns2") for i in range(n)]
    await store.apply_batch([(ref_of(o), i + 1, o) for i, o in enumerate(objs)], [])
    listed = await store.list(kind="App")
    assert len(listed) == n
    assert [o["metadata"]["name"] for o in listed] == sorted(
        (o["metadata"]["name"] for o in objs), key=lambda name: (int(name[1:]) % 2 == 0, name)
    )
    assert len(await store.list(namespace="ns1")) == n // 2
    assert await store.list(kind="Service") == []
    assert await store.count(kind="App") == n
    assert len(await store.held()) == n


async def test_meta_is_kept_across_reopen_and_written_with_a_batch(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    s = await open_edge_store(path, secret_key=KEY)
    assert await s.get_meta("boot_id") is None
    await s.set_meta("boot_id", "b-1")
    a = app("a")
    await s.apply_batch([(ref_of(a), 4, a)], [], meta={"sync_rv": "4"})
    await s.aclose()
    s = await open_edge_store(path, secret_key=KEY)
    assert await s.get_meta("boot_id") == "b-1"
    assert await s.get_meta("sync_rv") == "4"
    assert await s.held() == [Versioned(ref_of(a), 4)]
    await s.aclose()


async def test_a_closed_store_refuses_calls(tmp_path: Path) -> None:
    s = await open_edge_store(tmp_path / "store.db", secret_key=KEY)
    await s.aclose()
    await s.aclose()
    with pytest.raises(StoreError):
        await s.count()


def test_store_key_is_created_once_with_mode_0600(tmp_path: Path) -> None:
    path = tmp_path / "pki" / "store.key"
    key = load_or_create_store_key(path)
    assert len(key) == 32
    assert path.stat().st_mode & 0o777 == 0o600
    assert load_or_create_store_key(path) == key
    assert [p.name for p in path.parent.iterdir()] == ["store.key"]


def test_store_key_readable_by_others_or_short_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "store.key"
    path.write_bytes(bytes(32))
    path.chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        load_or_create_store_key(path)
    path.chmod(0o600)
    path.write_bytes(b"short")
    with pytest.raises(ConfigError, match="expected 32"):
        load_or_create_store_key(path)


def test_a_wrong_sized_secret_key_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        EdgeStore(tmp_path / "s.db", secret_key=b"too short")


_LAZY_CRYPTO = """
import asyncio, sys
from pathlib import Path
from edgeweave.edge.store import open_edge_store
from edgeweave.protocol.refs import ResourceRef

def obj(kind, rv):
    body = {"kind": kind, "metadata": {"name": "x", "namespace": "default"}, "data": {"k": "v"}}
    return [(ResourceRef(kind, "default", "x"), rv, body)]

async def main(path):
    store = await open_edge_store(path, secret_key=bytes(32))
    try:
        await store.apply_batch(obj("ConfigMap", 1), [])
        await store.list("ConfigMap")
        assert "cryptography" not in sys.modules, "loaded without a Secret"
        await store.apply_batch(obj("Secret", 2), [])
        assert (await store.get(ResourceRef("Secret", "default", "x")))["data"] == {"k": "v"}
        assert "cryptography" in sys.modules
    finally:
        await store.aclose()

asyncio.run(main(Path(sys.argv[1])))
"""


def test_cryptography_is_loaded_only_for_the_first_secret(tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-c", _LAZY_CRYPTO, str(tmp_path / "s.db")], check=True)
