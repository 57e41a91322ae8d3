"""The pipeline commands' pure parts: ``repo@ref:/path`` arguments, what ``file put`` sends
where, the tables and trees they print, and spec errors found before any request."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from edgeweave.cli.context import UsageError
from edgeweave.cli.file import plan_puts
from edgeweave.cli.job import datum_rows, job_rows, progress_cell
from edgeweave.cli.lineage import tree_lines
from edgeweave.cli.main import main
from edgeweave.cli.pfs import (
    Progress,
    RepoRef,
    format_bytes,
    format_duration,
    parse_ref,
    progress_text,
)
from edgeweave.cli.pipeline import describe_input, pipeline_rows


def test_refs_read_like_pachctl() -> None:
    assert parse_ref("images") == RepoRef("images", "master", None)
    assert parse_ref("images@dev") == RepoRef("images", "dev", None)
    assert parse_ref("images@master:/a/b.txt") == RepoRef("images", "master", "/a/b.txt")
    assert parse_ref("images:a.txt") == RepoRef("images", "master", "/a.txt")
    assert str(parse_ref("images@3f2a:/x")) == "images@3f2a:/x"
    for bad in ("", "@master", "images@master:", "a/b@master"):
        with pytest.raises(UsageError):
            parse_ref(bad)
    with pytest.raises(UsageError, match="names no file"):
        parse_ref("images@master", need_path=True)


def test_file_put_targets_files_directories_and_several_files(tmp_path: Path) -> None:
    (tmp_path / "d" / "sub").mkdir(parents=True)
    for name in ("a.txt", "d/b.txt", "d/sub/c.txt"):
        (tmp_path / name).write_text(name)
    a, d = str(tmp_path / "a.txt"), str(tmp_path / "d")
    assert plan_puts(parse_ref("r@master:/x.txt"), [a], False) == [(Path(a), "/x.txt")]
    assert plan_puts(parse_ref("r@master:/in/"), [a], False) == [(Path(a), "/in/a.txt")]
    assert plan_puts(parse_ref("r@master"), [a], False) == [(Path(a), "/a.txt")]
    assert [dest for _, dest in plan_puts(parse_ref("r@master:/data"), [d], True)] == [
        "/data/b.txt",
        "/data/sub/c.txt",
    ]
    both = plan_puts(parse_ref("r@master:/in"), [a, str(tmp_path / "d" / "b.txt")], False)
    assert [dest for _, dest in both] == ["/in/a.txt", "/in/b.txt"]
    with pytest.raises(UsageError, match="add -r"):
        plan_puts(parse_ref("r@master"), [d], False)
    with pytest.raises(UsageError, match="no such file"):
        plan_puts(parse_ref("r@master"), [str(tmp_path / "missing")], False)


def test_sizes_durations_and_the_progress_bar() -> None:
    assert [format_bytes(n) for n in (0, 1023, 1536, 23 << 20, 3 << 30)] == [
        "0 B",
        "1023 B",
        "1.5 KiB",
        "23.0 MiB",
        "3.0 GiB",
    ]
    assert [format_duration(s) for s in (0.045, 3.21, 250, 7500)] == [
        "45ms",
        "3.2s",
        "4m10s",
        "2h05m",
    ]
    assert progress_text(5 << 20, 10 << 20, "big.bin", width=10) == (
        "[#####-----]  50%  5.0 MiB/10.0 MiB  big.bin"
    )
    out = io.StringIO()
    bar = Progress(out, 100, "x", enabled=True, interval_s=0)
    bar.advance(40)
    bar.advance(60)
    bar.close()
    assert out.getvalue().endswith("100%  100 B/100 B  x\n")
    quiet = io.StringIO()
    Progress(quiet, 100, "x", enabled=False).advance(100)
    assert quiet.getvalue() == ""


def test_job_and_datum_tables_show_processed_skipped_total() -> None:
    job = {
        "id": "81ab",
        "pipeline": "wordcount",
        "startedAt": 100.0,
        "finishedAt": 100.25,
        "datums": {"total": 4, "processed": 1, "skipped": 2, "failed": 1, "recovered": 0},
        "bytesIn": 2048,
        "bytesOut": 12,
        "state": "failure",
    }
    assert progress_cell(job) == "1 + 2 / 4 (1 failed)"
    header, row = job_rows([job], now=110.0)
    assert header[5] == "PROGRESS"
    assert row == [
        "81ab",
        "wordcount",
        "cloud",
        "10s ago",
        "250ms",
        "1 + 2 / 4 (1 failed)",
        "2.0 KiB",
        "12 B",
        "failure",
    ]
    rows = datum_rows(
        [
            {
                "id": "a" * 64,
                "state": "success",
                "name": "docs:/a.txt",
                "durationSeconds": 0.3,
                "bytesIn": 5,
                "bytesOut": 5,
                "attempts": 1,
            },
            {"id": "b" * 64, "state": "skipped", "name": "docs:/b.txt"},
        ]
    )
    assert rows[1] == ["aaaaaaaaaaaa", "success", "docs:/a.txt", "300ms", "5 B", "5 B", "1"]
    assert rows[2] == ["bbbbbbbbbbbb", "skipped", "docs:/b.txt", "-", "-", "-", "-"]


def test_pipeline_inputs_and_lineage_print_compactly() -> None:
    cross = {
        "cross": [
            {"pfs": {"repo": "docs", "glob": "/*"}},
            {"pfs": {"repo": "code", "glob": "/", "branch": "v2"}},
        ]
    }
    assert describe_input(cross) == "(docs:/* x code@v2:/)"
    assert describe_input({"cron": {"name": "tick", "spec": "@every 1m"}}) == "cron:@every 1m"
    obj = {
        "metadata": {"name": "wc"},
        "spec": {"input": {"pfs": {"repo": "docs", "glob": "/*"}}},
        "status": {
            "state": "idle",
            "lastJob": {"processed": 1, "skipped": 2, "total": 3, "state": "success"},
        },
    }
    assert pipeline_rows([obj])[1][:5] == ["wc", "docs:/*", "cloud", "idle", "1 + 2 / 3 success"]
    node = {
        "repo": "wordcount",
        "commit": "c" * 32,
        "path": "/a.txt",
        "pipeline": "wordcount",
        "job": "j" * 32,
        "datum": "d" * 64,
        "datumJob": "k" * 32,
        "inputs": [{"repo": "docs", "commit": "e" * 32, "path": "/a.txt", "inputs": []}],
    }
    assert tree_lines(node) == [
        "wordcount@cccccccccccc:/a.txt  (pipeline wordcount, job jjjjjjjjjjjj, datum "
        "dddddddddddd (skipped: run by job kkkkkkkkkkkk))",
        "  docs@eeeeeeeeeeee:/a.txt  (put by a user)",
    ]


def test_lineage_across_nodes_prints_the_merge_the_nodes_job_and_where_the_input_lives() -> None:
    frame = {"repo": "frames", "commit": "f" * 32, "path": "/l.png", "node": "edge-1"}
    branch = {
        "repo": "people-frames",
        "commit": "b" * 32,
        "path": "/l.png",
        "pipeline": "people",
        "job": "j" * 32,
        "jobNode": "edge-1",
        "datum": "d" * 64,
        "datumJob": "j" * 32,
        "inputs": [{**frame, "inputs": []}],
    }
    view = {
        "repo": "people-frames",
        "commit": "m" * 32,
        "path": "/edge-1/l.png",
        "mergedFrom": "edge-1",
        "inputs": [branch],
    }
    assert tree_lines(view) == [
        "people-frames@mmmmmmmmmmmm:/edge-1/l.png  (merged from branch edge-1)",
        "  people-frames@bbbbbbbbbbbb:/l.png  (pipeline people, job jjjjjjjjjjjj on node "
        "edge-1, datum dddddddddddd)",
        "    frames@ffffffffffff:/l.png  (on node edge-1)",
    ]


def test_pipeline_create_reports_a_bad_spec_before_contacting_a_cloud(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = tmp_path / "bad.yaml"
    spec.write_text(
        "pipeline: {name: edges}\ntransform: {cmd: [sh]}\n"
        "input: {pfs: {repo: images, glob: '/[a'}}\n"
    )
    code = main(
        ["--config", str(tmp_path / "no-such-config.yaml"), "pipeline", "create", "-f", str(spec)]
    )
    assert code == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: {spec}:1: ") and "input.pfs.glob" in err
