"""``edgeweave file put|get|list|glob|delete``: files in repos, addressed like pachctl.

- ``file put images@master:/a.txt -f a.txt`` stores one file as a new commit; a target that
  ends in ``/`` (or names no path) takes the local file's name. ``-r -f DIR`` puts every
  file under DIR below the target path, and several ``-f`` put several files — either way in
  **one** commit, so a pipeline sees them together. Large files show a progress bar when
  stderr is a terminal. Each file is streamed; nothing is read whole into memory.
- ``file get images@master:/a.txt [-o OUT]`` writes the content to stdout or OUT.
- ``file list images@master[:/dir]`` and ``file glob 'images@master:/*.txt'``: tables of
  NAME, TYPE, SIZE (``-o json`` for scripts).
- ``file delete images@master:/a.txt`` deletes a file or a directory in a new commit.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgeweave.cli.context import UsageError, add_global_options, open_client

if TYPE_CHECKING:
    from edgeweave.cli.pfs import RepoRef
    from edgeweave.client.http import Client

BLOCK_BYTES = 1024 * 1024
PROGRESS_MIN_BYTES = 4 * 1024 * 1024  # smaller files go too fast to watch
FILE_COLUMNS = ("NAME", "TYPE", "SIZE")


def add_put_arguments(put: argparse.ArgumentParser) -> None:
    """The arguments of ``file put`` (the cloud's) and ``edge file put`` (a node's)."""
    put.add_argument("target", metavar="REPO@BRANCH[:/PATH]")
    put.add_argument(
        "-f",
        "--file",
        dest="files",
        action="append",
        required=True,
        metavar="FILE",
        help="a local file (repeatable); with -r a directory",
    )
    put.add_argument("-r", "--recursive", action="store_true", help="put a directory's files")


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("file", help="files in repos: put, get, list, glob, delete")
    add_global_options(p, suppress=True)
    sub = p.add_subparsers(dest="file_command", metavar="COMMAND", required=True)

    put = sub.add_parser("put", help="put local files into a repo (one commit)")
    add_global_options(put, suppress=True)
    add_put_arguments(put)
    put.set_defaults(func=run_put)

    get = sub.add_parser("get", help="print a file's content (or write it to -o)")
    add_global_options(get, suppress=True)
    get.add_argument("source", metavar="REPO@REF:/PATH")
    get.add_argument("-o", "--output", metavar="FILE", type=Path, help="write here, not stdout")
    get.set_defaults(func=run_get)

    for name, helptext, metavar in (
        ("list", "list a directory of a commit", "REPO@REF[:/DIR]"),
        ("glob", "list the files a glob pattern matches", "REPO@REF:PATTERN"),
    ):
        cmd = sub.add_parser(name, help=helptext)
        add_global_options(cmd, suppress=True)
        cmd.add_argument("source", metavar=metavar)
        cmd.add_argument("-o", "--output", choices=("table", "json"), default="table")
        cmd.set_defaults(func=run_list if name == "list" else run_glob)

    delete = sub.add_parser("delete", help="delete a file or directory (a new commit)")
    add_global_options(delete, suppress=True)
    delete.add_argument("target", metavar="REPO@BRANCH:/PATH")
    delete.set_defaults(func=run_delete)


# ---- put -------------------------------------------------------------------------------------


def plan_puts(target: RepoRef, files: list[str], recursive: bool) -> list[tuple[Path, str]]:
    """``(local file, repo path)`` for every file to put; UsageError for a bad combination."""
    base = target.path or "/"
    pairs: list[tuple[Path, str]] = []
    for given in files:
        local = Path(given)
        if local.is_dir():
            if not recursive:
                raise UsageError(f"{given} is a directory: add -r to put the files under it")
            root = base.rstrip("/")
            for child in sorted(p for p in local.rglob("*") if p.is_file()):
                pairs.append((child, f"{root}/{child.relative_to(local).as_posix()}"))
        elif local.is_file():
            multiple = len(files) > 1
            into_dir = base.endswith("/") or target.path is None or multiple
            pairs.append((local, base.rstrip("/") + "/" + local.name if into_dir else base))
        else:
            raise UsageError(f"cannot read {given}: no such file")
    if not pairs:
        raise UsageError("nothing to put: the directories hold no files")
    return pairs


def _blocks(path: Path, advance: Any) -> Iterator[bytes]:
    with path.open("rb") as f:
        while block := f.read(BLOCK_BYTES):
            advance(len(block))
            yield block


def put_one(
    client: Client, target: RepoRef, local: Path, dest: str, commit: str | None
) -> dict[str, Any]:
    from edgeweave.cli.pfs import Progress

    size = local.stat().st_size
    show = sys.stderr.isatty() and size >= PROGRESS_MIN_BYTES
    progress = Progress(sys.stderr, size, dest, enabled=show)
    try:
        answer = client.put_file(
            target.repo, target.ref, dest, _blocks(local, progress.advance), size, commit
        )
    finally:
        progress.close()
    return answer


def run_put(args: argparse.Namespace) -> int:
    from edgeweave.cli.pfs import parse_ref

    target = parse_ref(args.target)
    pairs = plan_puts(target, args.files, args.recursive)
    with open_client(args) as client:
        if len(pairs) == 1:
            local, dest = pairs[0]
            commit = put_one(client, target, local, dest, None)["commit"]
        else:
            commit = client.start_commit(target.repo, target.ref)
            try:
                for local, dest in pairs:
                    put_one(client, target, local, dest, commit["id"])
            finally:  # an open commit blocks the branch: finish what was put
                commit = client.finish_commit(target.repo, commit["id"])
    noun = "file" if len(pairs) == 1 else "files"
    print(f"{len(pairs)} {noun} put in {target.repo}@{commit['branch']} commit {commit['id']}")
    return 0


# ---- get, list, glob, delete -----------------------------------------------------------------


def run_get(args: argparse.Namespace) -> int:
    from edgeweave.cli.pfs import parse_ref

    source = parse_ref(args.source, need_path=True)
    assert source.path is not None
    with open_client(args) as client:
        blocks = client.get_file(source.repo, source.ref, source.path)
        if args.output is None:
            for block in blocks:
                sys.stdout.buffer.write(block)
            sys.stdout.buffer.flush()
            return 0
        tmp = args.output.with_name(args.output.name + ".part")
        with tmp.open("wb") as f:
            for block in blocks:
                f.write(block)
        tmp.replace(args.output)
    return 0


def print_files(files: list[dict[str, Any]], output: str, what: str) -> None:
    from edgeweave.cli import output as out
    from edgeweave.cli.pfs import format_bytes

    if output == "json":
        print(out.to_json({"items": files}))
        return
    if not files:
        print(f"No files {what}.", file=sys.stderr)
        return
    rows = [list(FILE_COLUMNS)]
    rows.extend([f["path"], f["type"], format_bytes(f.get("size"))] for f in files)
    print(out.render_table(rows))


def run_list(args: argparse.Namespace) -> int:
    from edgeweave.cli.pfs import parse_ref

    source = parse_ref(args.source)
    with open_client(args) as client:
        files = client.list_files(source.repo, source.ref, source.path or "/")
    print_files(files, args.output, f"in {source}")
    return 0


def run_glob(args: argparse.Namespace) -> int:
    from edgeweave.cli.pfs import parse_ref

    source = parse_ref(args.source, need_path=True)
    assert source.path is not None
    with open_client(args) as client:
        files = client.glob_files(source.repo, source.ref, source.path)
    print_files(files, args.output, f"match {source}")
    return 0


def run_delete(args: argparse.Namespace) -> int:
    from edgeweave.cli.pfs import parse_ref

    target = parse_ref(args.target, need_path=True)
    assert target.path is not None
    with open_client(args) as client:
        answer = client.delete_file(target.repo, target.ref, target.path)
    commit = answer["commit"]
    print(
        f"{answer['deleted']} file(s) deleted in {target.repo}@{commit['branch']} commit "
        f"{commit['id']}"
    )
    return 0
