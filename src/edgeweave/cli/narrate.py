"""What `edgeweave demo` prints: a step's title, the command it runs and that command's output.

Shared by :mod:`edgeweave.cli.demo` and the example drivers it runs
(:mod:`~edgeweave.cli.demo_building`, :mod:`~edgeweave.cli.demo_industrial`), so each step
reads the same: ``==> title``, ``$ edgeweave ...``, the output. Writes to stdout only.
"""

from __future__ import annotations

from collections.abc import Sequence

from edgeweave.cli.fleet import Fleet


def say(text: str) -> None:
    print(f"\n==> {text}", flush=True)


def show(fleet: Fleet, title: str, *argv: str) -> str:
    """Run ``edgeweave ARGV`` against the fleet's cloud and print it; its output."""
    say(title)
    print(f"$ edgeweave {' '.join(argv)}", flush=True)
    out = fleet.cli(*argv)
    print(out, end="", flush=True)
    return out


def table(rows: Sequence[Sequence[str]]) -> None:
    from edgeweave.cli.output import render_table

    print(render_table(rows), flush=True)
