"""Putting files into this node's repos from the node itself: `edgeweave edge file put`.

The agent is the only writer of its repos (its host deletes open commits at start, runs GC,
wakes the pipelines reading a repo when a commit is finished), so a second process must not
write the store files. Instead the agent listens on **loopback TCP** (port 0) and writes
``DATA/pipelines/put.json`` (mode 0600: ``{port, token}``); the CLI on the same machine, run
by a user who can read the data directory, connects, sends one JSON header line
``{token, repo, branch, files: [{path, size}, ...]}`` and then the files' bytes back to back
(exactly ``size`` of each, in that order), and reads one JSON line back: ``{ok: true, commit,
size}`` (the bytes of all files) or ``{ok: false, error}``. All the files go into **one**
commit, so a pipeline sees them together. Loopback TCP rather than a unix
socket because socket paths are limited to ~100 bytes and data directories can be deeper.
The token is compared in constant time; each file's size is checked against
``pipelines.max_file_bytes`` before any byte is read (the header line, at most 64 KiB, bounds
how many files one put holds). Works with the cloud away: nothing here
touches the link.

Must not: know pipelines (it calls ``put`` and the host wakes them) or accept remote peers.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import os
import secrets
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from edgeweave.errors import BadRequest, EdgeweaveError, NotFound, PayloadTooLarge

log = logging.getLogger(__name__)

MAX_HEADER_BYTES = 64 * 1024
BLOCK_BYTES = 256 * 1024
ENDPOINT_FILE = "put.json"
# (repo, branch, [(path, local file), ...]) -> the id of the one commit holding them all
Put = Callable[[str, str, list[tuple[str, Path]]], Awaitable[str]]


def _header(line: bytes, token: str, max_bytes: int) -> tuple[str, str, list[tuple[str, int]]]:
    try:
        doc: Any = json.loads(line)
    except ValueError as e:
        raise BadRequest(f"the header is not JSON: {e}") from e
    if not isinstance(doc, dict) or not hmac.compare_digest(
        str(doc.get("token", "")).encode(), token.encode()
    ):
        raise BadRequest("wrong token: read it from DATA/pipelines/put.json")
    repo, branch, files = doc.get("repo"), doc.get("branch"), doc.get("files")
    if not all(isinstance(v, str) and v for v in (repo, branch)):
        raise BadRequest("repo and branch are required")
    if not isinstance(files, list) or not files:
        raise BadRequest("files must be a non-empty list of {path, size}")
    sized: list[tuple[str, int]] = []
    for i, f in enumerate(files):
        path, size = (f.get(k) for k in ("path", "size")) if isinstance(f, dict) else (None, None)
        if not isinstance(path, str) or not path:
            raise BadRequest(f"files[{i}].path is required")
        if not isinstance(size, int) or size < 0:
            raise BadRequest(f"files[{i}].size must be a non-negative integer")
        if size > max_bytes:
            raise PayloadTooLarge(f"{path} is over {max_bytes} bytes (pipelines.max_file_bytes)")
        sized.append((path, size))
    return str(repo), str(branch), sized


async def _receive(reader: asyncio.StreamReader, uploads: Path, path: str, size: int) -> Path:
    """Read exactly ``size`` bytes into a new file under ``uploads``."""
    fd, name = tempfile.mkstemp(dir=uploads, suffix=".part")
    upload = Path(name)
    try:
        with os.fdopen(fd, "wb") as f:
            left = size
            while left:
                block = await reader.read(min(left, BLOCK_BYTES))
                if not block:
                    raise BadRequest(f"{path} ended {left} bytes early")
                await asyncio.to_thread(f.write, block)
                left -= len(block)
    except BaseException:
        upload.unlink(missing_ok=True)
        raise
    return upload


async def _serve_one(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    token: str,
    uploads: Path,
    max_bytes: int,
    put: Put,
) -> None:
    answer: dict[str, Any]
    received: list[tuple[str, Path]] = []
    try:
        line = await reader.readuntil(b"\n")
        repo, branch, files = _header(line, token, max_bytes)
        for path, size in files:
            received.append((path, await _receive(reader, uploads, path, size)))
        commit = await put(repo, branch, received)
        answer = {"ok": True, "commit": commit, "size": sum(size for _, size in files)}
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
        answer = {"ok": False, "error": "the header line is missing or too long"}
    except EdgeweaveError as e:
        answer = {"ok": False, "error": e.message}
    except OSError as e:
        answer = {"ok": False, "error": f"cannot store the file: {e}"}
    finally:
        for _, upload in received:
            upload.unlink(missing_ok=True)
    try:
        writer.write(json.dumps(answer).encode() + b"\n")
        await writer.drain()
    except OSError:
        pass  # the client went away: the put happened (or not) all the same
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


@contextlib.asynccontextmanager
async def open_put_server(root: Path, max_bytes: int, put: Put) -> AsyncIterator[int]:
    """Listen on 127.0.0.1 and publish ``root/put.json``; yields the port."""
    token = secrets.token_hex(16)
    uploads = root / "uploads"
    uploads.mkdir(parents=True, exist_ok=True)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _serve_one(reader, writer, token, uploads, max_bytes, put)

    server = await asyncio.start_server(handle, "127.0.0.1", 0, limit=MAX_HEADER_BYTES)
    port = int(server.sockets[0].getsockname()[1])
    endpoint = root / ENDPOINT_FILE
    tmp = endpoint.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({"port": port, "token": token}, f)
    os.replace(tmp, endpoint)
    try:
        yield port
    finally:
        endpoint.unlink(missing_ok=True)
        server.close()
        await server.wait_closed()


async def put_local(data_dir: Path, repo: str, branch: str, files: list[tuple[str, Path]]) -> str:
    """The client side (the CLI): send ``files`` (``(path in the repo, local file)``) to the
    agent of ``data_dir``, to be put in one commit; its id."""
    endpoint = data_dir / "pipelines" / ENDPOINT_FILE
    try:
        doc = json.loads(endpoint.read_text())
        port, token = int(doc["port"]), str(doc["token"])
    except FileNotFoundError:
        raise NotFound(
            f"{endpoint} does not exist: the agent is not running there, or the node holds "
            "no pipeline and no repo located on it yet (the pipeline host starts with the "
            "first one; `edgeweave repo create NAME --node NODE` places a repo there)"
        ) from None
    except (OSError, ValueError, KeyError) as e:
        raise BadRequest(f"cannot read {endpoint}: {e}") from e
    listed = [{"path": path, "size": file.stat().st_size} for path, file in files]
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError as e:
        raise NotFound(
            f"the agent does not answer on 127.0.0.1:{port} ({e}); is it running?"
        ) from e
    try:
        header = {"token": token, "repo": repo, "branch": branch, "files": listed}
        writer.write(json.dumps(header).encode() + b"\n")
        try:
            for _, file in files:
                with file.open("rb") as f:
                    while block := f.read(BLOCK_BYTES):
                        writer.write(block)
                        await writer.drain()
        except ConnectionError:
            pass  # the agent refused early (too large, wrong token): its answer says why
        line = await reader.readline()
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    try:
        answer = json.loads(line)
    except ValueError:
        raise BadRequest("the agent closed the connection without an answer") from None
    if not answer.get("ok"):
        raise BadRequest(str(answer.get("error")))
    return str(answer["commit"])
