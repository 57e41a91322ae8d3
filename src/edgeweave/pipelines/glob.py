"""Pachyderm glob patterns over the sorted file paths of a commit (COMPAT.md §3).

A glob picks the *entries* of a repo that become datums. Paths are absolute (``/bar/bar-1``);
a repo holds files only, directories exist as the prefixes of file paths. With a repo holding
``/foo-1``, ``/foo-2``, ``/bar/bar-1`` and ``/bar/bar-2``:

- ``/`` matches the whole repo once (no match when the repo is empty);
- ``/*`` matches each top-level entry: ``/foo-1``, ``/foo-2`` and the directory ``/bar``;
- ``/*/*`` matches ``/bar/bar-1`` and ``/bar/bar-2``; ``/bar/*`` the entries under ``/bar``;
- a pattern with ``**`` matches *files* at any depth (``/**`` is every file, ``/**.csv`` every
  CSV file); ``/**/`` also matches no directory at all (``/**/x`` matches ``/x``);
- ``*`` and ``?`` never cross a ``/``; ``[abc]``, ``[a-z]``, ``[!abc]``/``[^abc]`` are
  character classes, ``{a,b}`` alternatives, ``\\`` escapes the next character;
- ``(...)`` are capture groups, read by ``join_on``/``group_by`` templates such as ``$1``.

A directory entry stands for every file under it; a match records the range of the sorted
path list it covers, so a 100,000-file repo is matched without copying paths. A glob whose
leading segments are literal (``/bar/*``) only looks at that directory's range (bisection).

Pure: no I/O. This module must not know about repos, commits or datums.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Sequence
from dataclasses import dataclass

from edgeweave.errors import InvalidObject

_META = frozenset("*?[{(\\")
_TEMPLATE_RE = re.compile(r"\$(\d+)")


@dataclass(slots=True)  # not frozen: a frozen dataclass is 3x slower to build; never mutated
class GlobMatch:
    """An entry a glob matched: ``path`` is a file or a directory (``/`` for the whole repo);
    the entry's files are ``paths[start:end]`` of the list that was matched."""

    path: str
    start: int
    end: int
    groups: tuple[str, ...] = ()


class Glob:
    """A compiled Pachyderm glob. Raises :class:`InvalidObject` for a malformed pattern."""

    def __init__(self, pattern: str) -> None:
        text = pattern.strip()
        if not text:
            raise InvalidObject("a glob may not be empty; '/' means the whole repo")
        if not text.startswith("/"):
            text = "/" + text
        text = text.rstrip("/") or "/"
        self.pattern = text
        self.whole_repo = text == "/"
        body, self.group_count, self.recursive = _translate(text)
        if self.recursive:
            self._regex = re.compile(r"\A" + body + r"\Z")
        else:
            self._regex = re.compile(r"\A" + body + r"(?=/|\Z)")
        self._prefix = _literal_dir_prefix(text)

    def __repr__(self) -> str:
        return f"Glob({self.pattern!r})"

    def match(self, paths: Sequence[str]) -> list[GlobMatch]:
        """The entries matched among ``paths`` (sorted, absolute, unique), in path order."""
        if self.whole_repo:
            return [GlobMatch("/", 0, len(paths))] if paths else []
        lo, hi = 0, len(paths)
        if len(self._prefix) > 1:
            lo = bisect.bisect_left(paths, self._prefix)
            hi = bisect.bisect_left(paths, self._prefix[:-1] + "0", lo)  # "0" follows "/"
        out: list[GlobMatch] = []
        regex_match = self._regex.match
        grouped = self.group_count > 0
        i = lo
        while i < hi:
            path = paths[i]
            m = regex_match(path)
            if m is None:
                i += 1
                continue
            groups = m.groups("") if grouped else ()
            end = m.end()
            if end == len(path):
                out.append(GlobMatch(path, i, i + 1, groups))
                i += 1
                continue
            entry = path[:end]  # a directory: every file under it is in this match
            stop = bisect.bisect_left(paths, entry + "0", i, hi)
            out.append(GlobMatch(entry, i, stop, groups))
            i = stop
        return out

    def match_path(self, path: str) -> tuple[str, tuple[str, ...]] | None:
        """The entry (and capture groups) a single file path falls in, or None."""
        if self.whole_repo:
            return "/", ()
        m = self._regex.match(path)
        if m is None:
            return None
        return path[: m.end()], m.groups("")


def template_groups(template: str) -> list[int]:
    """The group numbers a ``join_on``/``group_by`` template reads (``"$1-$2"`` → [1, 2])."""
    return [int(n) for n in _TEMPLATE_RE.findall(template)]


def expand_template(template: str, groups: Sequence[str]) -> str:
    """``template`` with ``$N`` replaced by capture group N (1-based; missing groups are '')."""
    if "$" not in template:
        return template
    if template == "$1":  # the common case, without a regex substitution
        return groups[0] if groups else ""

    def sub(m: re.Match[str]) -> str:
        n = int(m.group(1))
        return groups[n - 1] if 0 < n <= len(groups) else ""

    return _TEMPLATE_RE.sub(sub, template)


def _literal_dir_prefix(pattern: str) -> str:
    """The literal leading directories of ``pattern``, ending in '/' (``/a/b*`` → ``/a/``)."""
    cut = next((i for i, c in enumerate(pattern) if c in _META), len(pattern))
    return pattern[: pattern.rfind("/", 0, cut) + 1]


def _translate(pattern: str) -> tuple[str, int, bool]:
    """The regex body of a glob, its number of capture groups, and whether it has ``**``."""
    out: list[str] = []
    groups = 0
    open_groups = 0
    braces = 0
    recursive = False
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "\\":
            if i + 1 >= n:
                raise _bad(pattern, "ends with a lone '\\'")
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        if c == "*":
            if pattern.startswith("**", i):
                recursive = True
                if pattern.startswith("/**/", i - 1):  # "/**/x": zero or more directories
                    out.append("(?:[^/]+/)*")
                    i += 3
                else:
                    out.append(".*")
                    i += 2
                continue
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            cls, i = _char_class(pattern, i)
            out.append(cls)
            continue
        elif c == "{":
            braces += 1
            out.append("(?:")
        elif c == "," and braces:
            out.append("|")
        elif c == "}" and braces:
            braces -= 1
            out.append(")")
        elif c == "(":
            groups += 1
            open_groups += 1
            out.append("(")
        elif c == ")":
            if not open_groups:
                raise _bad(pattern, "has a ')' without its '('")
            open_groups -= 1
            out.append(")")
        else:
            out.append(re.escape(c))
        i += 1
    if open_groups:
        raise _bad(pattern, "has a '(' without its ')'")
    if braces:
        raise _bad(pattern, "has a '{' without its '}'")
    return "".join(out), groups, recursive


def _char_class(pattern: str, start: int) -> tuple[str, int]:
    """The regex for the class opening at ``start``, and the index just after its ']'."""
    i = start + 1
    negate = i < len(pattern) and pattern[i] in "!^"
    if negate:
        i += 1
    body: list[str] = []
    first = True
    while i < len(pattern):
        c = pattern[i]
        if c == "]" and not first:
            if not body:
                raise _bad(pattern, "has an empty '[]'")
            head = "[^/" if negate else "["
            return head + "".join(body) + "]", i + 1
        if c == "/":
            raise _bad(pattern, "has a '/' inside '[...]'; a class matches one name character")
        if c == "\\" and i + 1 < len(pattern):
            body.append(re.escape(pattern[i + 1]))
            i += 2
        else:
            body.append(c if c == "-" else re.escape(c))
            i += 1
        first = False
    raise _bad(pattern, "has a '[' without its ']'")


def _bad(pattern: str, problem: str) -> InvalidObject:
    return InvalidObject(f"glob {pattern!r} {problem}")
