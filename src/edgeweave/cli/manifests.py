"""Reading manifests (``-f FILE|DIR|-``) into documents that remember where they came from.

A source is YAML (several documents separated by ``---``) or JSON (when its first non-space
character is ``{`` or ``[``). A JSON list, or an object of kind ``List`` with ``items``, counts
as its items. A directory means its ``*.yaml``, ``*.yml`` and ``*.json`` files, sorted by name
(not recursive). Each :class:`Document` keeps its file and first line so every later message
can say where the problem is; syntax errors are raised as :class:`InvalidObject` with
``file:line: problem``. This module only reads; it must not talk to the cloud.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from edgeweave.errors import ConfigError, InvalidObject
from edgeweave.models.yamldocs import yaml_documents

MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")
MAX_MANIFEST_BYTES = 16 * 1024 * 1024
STDIN = "-"


@dataclass(frozen=True)
class Document:
    obj: dict[str, Any]
    source: str  # the file name, or "<stdin>"
    line: int  # 1-based line where the document starts

    @property
    def where(self) -> str:
        return f"{self.source}:{self.line}"


def read_sources(sources: list[str], stdin: TextIO | None = None) -> list[Document]:
    """Every document of every source, in order."""
    docs: list[Document] = []
    for source in sources:
        if source == STDIN:
            text = (stdin or sys.stdin).read(MAX_MANIFEST_BYTES + 1)
            docs.extend(parse_text(_checked_size(text, "<stdin>"), "<stdin>"))
            continue
        for path in expand_path(source):
            docs.extend(parse_text(read_file(path), str(path)))
    return docs


def read_text(source: str, stdin: TextIO | None = None) -> tuple[str, str]:
    """The text of one file (``-``: stdin) and the name to use for it in messages."""
    if source == STDIN:
        return _checked_size(
            (stdin or sys.stdin).read(MAX_MANIFEST_BYTES + 1), "<stdin>"
        ), "<stdin>"
    path = Path(source)
    if not path.is_file():
        raise ConfigError(f"{source}: no such file")
    return read_file(path), source


def expand_path(source: str) -> list[Path]:
    path = Path(source)
    if path.is_dir():
        return sorted(p for p in path.iterdir() if p.suffix in MANIFEST_SUFFIXES and p.is_file())
    if not path.exists():
        raise ConfigError(f"{source}: no such file or directory")
    return [path]


def read_file(path: Path) -> str:
    try:
        with path.open("r", encoding="utf-8") as f:
            text = f.read(MAX_MANIFEST_BYTES + 1)
    except UnicodeDecodeError as e:
        raise InvalidObject(f"{path}: not UTF-8 text ({e.reason})") from e
    except OSError as e:
        raise ConfigError(f"{path}: cannot read: {e.strerror}") from e
    return _checked_size(text, str(path))


def _checked_size(text: str, source: str) -> str:
    if len(text) > MAX_MANIFEST_BYTES:
        raise InvalidObject(f"{source}: larger than {MAX_MANIFEST_BYTES} bytes")
    return text


def parse_text(text: str, source: str) -> list[Document]:
    """The documents in ``text``; JSON when it starts with ``{`` or ``[``, else YAML."""
    stripped = text.lstrip()
    if stripped[:1] in ("{", "["):
        return _parse_json(text, source)
    return _parse_yaml(text, source)


def _parse_json(text: str, source: str) -> list[Document]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise InvalidObject(f"{source}:{e.lineno}: {e.msg}") from e
    line = 1 + text[: len(text) - len(text.lstrip())].count("\n")
    return _expand(value, source, line)


def _parse_yaml(text: str, source: str) -> list[Document]:
    docs: list[Document] = []
    for value, line in yaml_documents(text, source):
        docs.extend(_expand(value, source, line))
    return docs


def _expand(value: Any, source: str, line: int) -> list[Document]:
    """A document, or the items of a JSON list / ``kind: List``; blank documents vanish."""
    if value is None:
        return []
    if isinstance(value, list):
        items = value
    elif isinstance(value, dict) and value.get("kind") == "List":
        items = value.get("items") or []
        if not isinstance(items, list):
            raise InvalidObject(f"{source}:{line}: a List needs an `items` list", field="items")
    else:
        items = [value]
    docs = []
    for item in items:
        if not isinstance(item, dict):
            raise InvalidObject(
                f"{source}:{line}: expected an object with apiVersion, kind and metadata, "
                f"got {type(item).__name__}"
            )
        docs.append(Document(item, source, line))
    return docs
