"""Where a Merger places a node's file in its merged view, and the way back (for lineage).

A Merger (``cloud/pipelines/merger.py``) imports each node's delivered commit on a branch
named after the node, then places the files of every complete key on branch ``master`` of the
same repo: ``/<node><path>`` under node keying, ``/<key>/<node><path>`` under a correlation
key. The merged commit records the node-branch commits it was made from as its provenance
(``repo@commit``, the same repo), so lineage can map a merged path back with
:func:`source_paths` and check the file there by its digest.

Pure: no I/O.
"""

from __future__ import annotations

NODE_KEY = ""  # the one key of a merge keyed by node


def merged_path(key: str, node: str, path: str) -> str:
    """Where ``node``'s file ``path`` of ``key`` lands in the merged view."""
    return f"/{node}{path}" if key == NODE_KEY else f"/{key}/{node}{path}"


def source_paths(merged: str, node: str) -> list[str]:
    """The paths in ``node``'s delivered commit that ``merged`` may have been placed from
    (node keying first, then a correlation key); empty when it is not under ``node``."""
    out: list[str] = []
    prefix = f"/{node}/"
    if merged.startswith(prefix):
        out.append(merged[len(prefix) - 1 :])
    parts = merged.split("/", 3)  # "", key, node, rest
    if len(parts) == 4 and parts[1] and parts[2] == node and parts[3]:
        candidate = "/" + parts[3]
        if candidate not in out:
            out.append(candidate)
    return out


def provenance_entry(repo: str, commit: str) -> str:
    """How a commit is named in another commit's provenance."""
    return f"{repo}@{commit}"


def parse_provenance(entry: str) -> tuple[str, str] | None:
    """``(repo, commit)`` of a ``repo@commit`` provenance entry (None: another kind, such as
    ``pipeline@version`` or ``node:NAME``, told apart by the caller by what it finds)."""
    repo, sep, commit = entry.rpartition("@")
    if not sep or not repo or not commit:
        return None
    return repo, commit
