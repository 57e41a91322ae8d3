"""Datums: the units of work a pipeline's input splits into, with their identity and hash.

A datum is a tuple of *parts*; a part is one glob match (a file or a directory) of one pfs
input, mounted under ``/pfs/<input name>/``. How inputs combine (COMPAT.md §3):

- ``pfs``: one datum per glob match;
- ``cross``: every combination of the members' datums (none when a member has none);
- ``union``: the members' datums one after the other (a datum two members both yield, same
  name, repo and path, counts once);
- ``join``: members' matches are keyed by their ``join_on`` template over the glob's capture
  groups; for each key, the cross product of the members' matches. A key missing from a
  member yields nothing, unless a member with ``outer_join`` has it: then the members that
  have the key form the datum;
- ``group``: one datum per ``group_by`` key holding every match of every member with that key.

Identity and hash. A datum's ``id`` is the sha256 of its parts' identities (input name, repo,
matched path), so the same files under the same glob keep their id from commit to commit. Its
``hash`` covers the pipeline version (:func:`edgeweave.pipelines.spec.pipeline_version`), the
id and the content digests of every file it holds: an unchanged hash means unchanged work.

Trees are looked up by ``(repo, branch)``: one job reads one commit per input branch.

Pure: no I/O. This module must not run datums or read repos. A ``cron`` input is planned as
the pfs input of its tick repo (``spec.PipelineDoc.input``); one given here raises
:class:`PipelineError`.
"""

from __future__ import annotations

import gc
import hashlib
import itertools
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from edgeweave.errors import PipelineError
from edgeweave.models.pipelines import Input, PFSInput
from edgeweave.pipelines.glob import Glob, GlobMatch, expand_template
from edgeweave.pipelines.trees import FileTree

DEFAULT_BRANCH = "master"
TreeKey = tuple[str, str]  # (repo, branch)
_SEP = "\x1f"
_PART_SEP = "\x1e"


@dataclass(slots=True)  # not frozen: built by the hundred thousand; never mutated
class DatumPart:
    """One glob match of one pfs input: its files are ``tree.paths[match.start:match.end]``."""

    input: str  # the name the files appear under: /pfs/<input>/...
    repo: str
    tree: FileTree
    match: GlobMatch

    @property
    def identity(self) -> str:
        return part_identity(self.input, self.repo, self.match.path)

    def files(self) -> Iterator[tuple[str, str, int]]:
        """``(path, digest, size)`` of every file of the part, in path order."""
        s, e = self.match.start, self.match.end
        return zip(self.tree.paths[s:e], self.tree.digests[s:e], self.tree.sizes[s:e], strict=True)


Parts = tuple[DatumPart, ...]


@dataclass(slots=True)  # not frozen, like DatumPart
class Datum:
    id: str
    hash: str
    identity: str  # the part identities joined: what ``id`` hashes
    parts: Parts

    def files(self) -> Iterator[tuple[str, str, str, int]]:
        """``(input name, path, digest, size)`` of every file of the datum."""
        for part in self.parts:
            for path, digest, size in part.files():
                yield part.input, path, digest, size

    def describe(self) -> str:
        """A short name for messages: ``images:/a.png`` or ``a:/x.txt + b:/x.txt``."""
        return " + ".join(f"{p.input}:{p.match.path}" for p in self.parts) or "(empty)"


def identity_of(parts: Sequence[DatumPart]) -> str:
    return parts[0].identity if len(parts) == 1 else _PART_SEP.join(p.identity for p in parts)


def split_identity(identity: str) -> list[str]:
    """The part identities of a datum identity."""
    return identity.split(_PART_SEP)


def describe_identity(identity: str) -> str:
    """``input:path`` of each part of a datum identity (for messages)."""
    parts = [p.split(_SEP) for p in split_identity(identity)]
    return " + ".join(f"{p[0]}:{p[-1]}" for p in parts)


def id_of_identity(identity: str) -> str:
    return hashlib.sha256(identity.encode()).hexdigest()


def part_identity(input_name: str, repo: str, path: str) -> str:
    return f"{input_name}{_SEP}{repo}{_SEP}{path}"


def parse_part_identity(identity: str) -> tuple[str, str, str]:
    """``(input name, repo, matched path)`` of a part identity."""
    name, repo, path = identity.split(_SEP, 2)
    return name, repo, path


def make_datum(parts: Parts, version: str) -> Datum:
    """The datum of ``parts`` with its id and its hash under pipeline ``version``."""
    identity = identity_of(parts)
    ident = hashlib.sha256(identity.encode()).hexdigest()
    h = hashlib.sha256(f"{version}{_SEP}{ident}".encode())
    for part in parts:
        s, e = part.match.start, part.match.end
        if e - s == 1 and part.match.path == part.tree.paths[s]:
            h.update(f"{_PART_SEP}{part.tree.digests[s]}".encode())  # one file: its digest
            continue
        h.update(_PART_SEP.encode())
        h.update(_SEP.join(part.tree.paths[s:e]).encode())
        h.update(_SEP.join(part.tree.digests[s:e]).encode())
    return Datum(ident, h.hexdigest(), identity, parts)


def enumerate_datums(input: Input, trees: Mapping[TreeKey, FileTree], version: str) -> list[Datum]:
    """Every datum of ``input`` over ``trees``, in a stable order.

    The cyclic garbage collector is paused while the datums are built: a hundred thousand
    datums are some millions of acyclic objects, and the collections their allocation would
    trigger (each walking every live object) cost more than building them. Nothing awaits in
    between, and the collector's previous state is restored."""
    paused = gc.isenabled()
    gc.disable()
    try:
        return [make_datum(parts, version) for parts in part_tuples(input, trees)]
    finally:
        if paused:
            gc.enable()


def tree_key(pfs: PFSInput) -> TreeKey:
    return pfs.repo, pfs.branch or DEFAULT_BRANCH


def tree_keys(input: Input) -> list[TreeKey]:
    """The ``(repo, branch)`` pairs an input reads, in input order, without duplicates."""
    return list(dict.fromkeys(tree_key(pfs) for pfs in pfs_inputs(input)))


def pfs_inputs(input: Input) -> Iterator[PFSInput]:
    if input.pfs is not None:
        yield input.pfs
    for member in members_of(input):
        yield from pfs_inputs(member)


def part_tuples(input: Input, trees: Mapping[TreeKey, FileTree]) -> list[Parts]:
    """The parts of every datum of ``input`` (before hashing)."""
    if input.pfs is not None:
        return [(part,) for part in pfs_parts(input.pfs, trees)]
    if input.cross is not None:
        members = [part_tuples(m, trees) for m in input.cross]
        return [sum(combo, ()) for combo in itertools.product(*members)]
    if input.union is not None:
        seen: dict[str, Parts] = {}
        for member in input.union:
            for parts in part_tuples(member, trees):
                seen.setdefault(identity_of(parts), parts)
        return list(seen.values())
    if input.join is not None:
        return _join(input.join, trees)
    if input.group is not None:
        return _group(input.group, trees)
    if input.cron is not None:
        raise PipelineError(
            f"cron input {input.cron.name!r}: plan on PipelineDoc.input (the cron input as "
            "the pfs input of its repo)"
        )
    raise PipelineError("an input needs one of pfs, cross, union, join, group")


def members_of(input: Input) -> list[Input]:
    return input.cross or input.union or input.join or input.group or []


def tree_of(pfs: PFSInput, trees: Mapping[TreeKey, FileTree]) -> FileTree:
    key = tree_key(pfs)
    try:
        return trees[key]
    except KeyError:
        raise PipelineError(f"no commit given for input repo {key[0]}@{key[1]}") from None


def pfs_parts(pfs: PFSInput, trees: Mapping[TreeKey, FileTree]) -> list[DatumPart]:
    tree = tree_of(pfs, trees)
    name, repo = pfs.input_name(), pfs.repo
    return [DatumPart(name, repo, tree, m) for m in Glob(pfs.glob).match(tree.paths)]


def keyed_parts(
    members: Sequence[Input],
    trees: Mapping[TreeKey, FileTree],
    template_field: str,
    only: Collection[str] | None = None,
) -> list[dict[str, list[DatumPart]]]:
    """Per member: its parts by key (``join_on``/``group_by`` over the capture groups);
    with ``only``, just the parts of those keys."""
    out: list[dict[str, list[DatumPart]]] = []
    for member in members:
        pfs = member.pfs
        if pfs is None:  # the model already refuses this; keep the type checker honest
            raise PipelineError(f"each member of a {template_field} input must be a pfs input")
        template = getattr(pfs, template_field) or ""
        tree = tree_of(pfs, trees)
        name, repo = pfs.input_name(), pfs.repo
        by_key: dict[str, list[DatumPart]] = {}
        for match in Glob(pfs.glob).match(tree.paths):
            key = expand_template(template, match.groups)
            if only is None or key in only:
                by_key.setdefault(key, []).append(DatumPart(name, repo, tree, match))
        out.append(by_key)
    return out


def join_for_keys(
    members: Sequence[Input], keyed: Sequence[dict[str, list[DatumPart]]], keys: Iterable[str]
) -> list[Parts]:
    """The join datums of ``keys`` (see the module docstring for outer joins)."""
    outer = [bool(m.pfs is not None and m.pfs.outer_join) for m in members]
    out: list[Parts] = []
    for key in keys:
        present = [i for i, by_key in enumerate(keyed) if key in by_key]
        if not present:
            continue
        if len(present) < len(keyed) and not any(outer[i] for i in present):
            continue
        lists = [[(p,) for p in keyed[i][key]] for i in present]
        out.extend(sum(combo, ()) for combo in itertools.product(*lists))
    return out


def group_for_keys(keyed: Sequence[dict[str, list[DatumPart]]], keys: Iterable[str]) -> list[Parts]:
    """One datum per key of ``keys`` that any member has: every member's parts with it."""
    out = [tuple(p for by_key in keyed for p in by_key.get(key, ())) for key in keys]
    return [parts for parts in out if parts]


def _join(members: Sequence[Input], trees: Mapping[TreeKey, FileTree]) -> list[Parts]:
    keyed = keyed_parts(members, trees, "join_on")
    return join_for_keys(members, keyed, sorted(set().union(*keyed)))


def _group(members: Sequence[Input], trees: Mapping[TreeKey, FileTree]) -> list[Parts]:
    keyed = keyed_parts(members, trees, "group_by")
    return group_for_keys(keyed, sorted(set().union(*keyed)))
