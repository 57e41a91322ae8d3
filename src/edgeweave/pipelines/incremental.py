"""Planning a job from the paths that changed since the previous job: work in the change.

:func:`edgeweave.pipelines.plan.plan_datums` enumerates and hashes every datum of a job. When
the previous job ran the same pipeline version and every one of its datums was done, this
module plans from the changed paths instead:

1. each changed path falls in at most one glob *entry* per pfs input (``match_path``): those
   entries are *touched*;
2. only datums that hold a touched entry are built and hashed (a cross combines the touched
   entries of one member with all datums of the others; a join or group rebuilds the keys the
   touched entries carry, and every entry with such a key counts as touched, because adding a
   file to a key changes which datums that key forms);
3. previous datums holding a touched entry and absent now are *removed*; every other previous
   datum is skipped without being looked at.

For ``pfs`` inputs and unions of them the cost is a bisection per changed path; a join or
group also matches its members' globs once (no hashing). A plan cannot be incremental — and
:func:`plan_incremental` returns None so the caller enumerates everything — when the pipeline
version changed or ``reprocess_spec`` is ``every_job`` (every datum runs then anyway).
Previous datums that failed or were only recovered run again although none of their files
changed: they are rebuilt from their recorded identity, so they cost what a changed datum
costs.

Pure: no I/O. This module must not run anything or read repos.
"""

from __future__ import annotations

import itertools
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

from edgeweave.errors import PipelineError
from edgeweave.models.pipelines import Input, PFSInput
from edgeweave.pipelines.datums import (
    Datum,
    DatumPart,
    Parts,
    TreeKey,
    group_for_keys,
    id_of_identity,
    identity_of,
    join_for_keys,
    keyed_parts,
    make_datum,
    members_of,
    parse_part_identity,
    part_identity,
    part_tuples,
    pfs_inputs,
    split_identity,
    tree_key,
    tree_of,
)
from edgeweave.pipelines.glob import Glob, GlobMatch, expand_template
from edgeweave.pipelines.plan import DatumHistory, DatumPlan, is_done
from edgeweave.pipelines.trees import FileTree


@dataclass
class _Touched:
    entries: dict[int, dict[str, tuple[str, ...]]]  # id(pfs input) → entry → capture groups
    identities: set[str] = field(default_factory=set)  # part identities of touched entries


def plan_incremental(
    input: Input,
    trees: Mapping[TreeKey, FileTree],
    changed: Mapping[TreeKey, Collection[str]],
    previous: DatumHistory,
    version: str,
    *,
    every_job: bool = False,
) -> DatumPlan | None:
    """The plan of a job whose input trees differ from the previous job's by ``changed``
    (paths per ``(repo, branch)``); None when it must be planned in full (see above)."""
    if every_job or previous.version != version:
        return None
    touched = _touched_entries(input, changed)
    datums: dict[str, Datum] = {}
    for parts in _restricted(input, trees, touched):
        datum = make_datum(parts, version)
        datums.setdefault(datum.id, datum)
    records = previous.datums
    if _single_part(input):
        touched_ids = [i for i in map(id_of_identity, touched.identities) if i in records]
    else:
        idents = touched.identities
        touched_ids = [
            i for i, r in records.items() if any(p in idents for p in split_identity(r.identity))
        ]
    plan = DatumPlan(incremental=True)
    plan.removed = [i for i in touched_ids if i not in datums]
    gone = set(plan.removed)
    for pending in previous.pending:
        if pending not in datums and pending not in gone:
            rebuilt = _rebuild(records[pending].identity, input, trees)
            if rebuilt is None:
                plan.removed.append(pending)
            else:
                datum = make_datum(rebuilt, version)
                datums[datum.id] = datum
    plan.run = [d for d in datums.values() if not is_done(records.get(d.id), d)]
    added = sum(1 for i in datums if i not in records)
    plan.skipped = len(records) - len(plan.removed) + added - len(plan.run)
    return plan


def _touched_entries(input: Input, changed: Mapping[TreeKey, Collection[str]]) -> _Touched:
    touched = _Touched({})
    for pfs in pfs_inputs(input):
        paths = changed.get(tree_key(pfs), ())
        if not paths:
            continue
        glob = Glob(pfs.glob)
        entries: dict[str, tuple[str, ...]] = {}
        for path in paths:
            found = glob.match_path(path)
            if found is not None:
                entries.setdefault(found[0], found[1])
        if entries:
            touched.entries[id(pfs)] = entries
            name = pfs.input_name()
            touched.identities.update(part_identity(name, pfs.repo, e) for e in entries)
    return touched


def _restricted(input: Input, trees: Mapping[TreeKey, FileTree], touched: _Touched) -> list[Parts]:
    """The datums of ``input`` that hold a touched entry (parts only)."""
    if input.pfs is not None:
        return [(p,) for p in _touched_parts(input.pfs, trees, touched)]
    if input.cross is not None:
        restricted = [_restricted(m, trees, touched) for m in input.cross]
        seen: dict[str, Parts] = {}
        full: dict[int, list[Parts]] = {}
        for i, mine in enumerate(restricted):
            if not mine:
                continue
            lists = [
                mine if j == i else full.setdefault(j, part_tuples(m, trees))
                for j, m in enumerate(input.cross)
            ]
            for combo in itertools.product(*lists):
                parts: Parts = sum(combo, ())
                seen.setdefault(identity_of(parts), parts)
        return list(seen.values())
    if input.union is not None:
        union: dict[str, Parts] = {}
        for member in input.union:
            for parts in _restricted(member, trees, touched):
                union.setdefault(identity_of(parts), parts)
        return list(union.values())
    if input.join is not None or input.group is not None:
        return _restricted_keyed(input, trees, touched)
    raise PipelineError("a cron input: plan on PipelineDoc.input (the pfs input of its repo)")


def _restricted_keyed(
    input: Input, trees: Mapping[TreeKey, FileTree], touched: _Touched
) -> list[Parts]:
    is_join = input.join is not None
    members = members_of(input)
    template_field = "join_on" if is_join else "group_by"
    keys: set[str] = set()
    for member in members:
        pfs = member.pfs
        entries = touched.entries.get(id(pfs), {}) if pfs is not None else {}
        template = (getattr(pfs, template_field) or "") if pfs is not None else ""
        keys.update(expand_template(template, groups) for groups in entries.values())
    if not keys:
        return []
    keyed = keyed_parts(members, trees, template_field, only=keys)
    for by_key in keyed:  # every entry of an affected key is touched (see the docstring)
        for key in keys:
            touched.identities.update(p.identity for p in by_key.get(key, ()))
    ordered = sorted(keys)
    return join_for_keys(members, keyed, ordered) if is_join else group_for_keys(keyed, ordered)


def _touched_parts(
    pfs: PFSInput, trees: Mapping[TreeKey, FileTree], touched: _Touched
) -> list[DatumPart]:
    entries = touched.entries.get(id(pfs))
    if not entries:
        return []
    tree = tree_of(pfs, trees)
    files_only = Glob(pfs.glob).recursive
    out: list[DatumPart] = []
    for entry in sorted(entries):
        match = _entry_match(tree, entry, entries[entry], files_only=files_only)
        if match is not None:
            out.append(DatumPart(pfs.input_name(), pfs.repo, tree, match))
    return out


def _entry_match(
    tree: FileTree, entry: str, groups: tuple[str, ...], *, files_only: bool
) -> GlobMatch | None:
    """The match of ``entry`` in ``tree`` now: a file, a non-empty directory, or gone."""
    if entry == "/":
        return GlobMatch("/", 0, len(tree), groups) if len(tree) else None
    i = tree.index(entry)
    if i is not None:
        return GlobMatch(entry, i, i + 1, groups)
    if files_only:
        return None
    lo, hi = tree.dir_range(entry)
    return GlobMatch(entry, lo, hi, groups) if lo < hi else None


def _rebuild(identity: str, input: Input, trees: Mapping[TreeKey, FileTree]) -> Parts | None:
    """The parts of a recorded datum in today's trees (None when one of them is gone)."""
    leaves: dict[tuple[str, str], PFSInput] = {}
    for leaf in pfs_inputs(input):
        leaves.setdefault((leaf.input_name(), leaf.repo), leaf)
    parts: list[DatumPart] = []
    for part in split_identity(identity):
        name, repo, path = parse_part_identity(part)
        pfs = leaves.get((name, repo))
        if pfs is None:
            return None
        glob = Glob(pfs.glob)
        found = glob.match_path(path)
        if found is None:
            return None
        tree = tree_of(pfs, trees)
        match = _entry_match(tree, path, found[1], files_only=glob.recursive)
        if match is None:
            return None
        parts.append(DatumPart(name, repo, tree, match))
    return tuple(parts)


def _single_part(input: Input) -> bool:
    """True when every datum of ``input`` has exactly one part (pfs, unions of those)."""
    if input.pfs is not None:
        return True
    return input.union is not None and all(_single_part(m) for m in input.union)
