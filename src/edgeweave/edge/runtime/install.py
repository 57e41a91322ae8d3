"""Running an app's ``lifecycle.install`` command once, with a bounded time.

The command runs like the app itself (argv, app directory, app environment, own session)
with its output in ``logs/install.log``, truncated per attempt. A failure comes back as a
message a user can act on: the exit status and the last lines of the log. Whether install
is needed (the ``.installed-<hash>`` marker) is the caller's business.

An install never outlives its caller: on timeout or cancellation its whole process group is
killed and reaped.
"""

from __future__ import annotations

from collections.abc import Mapping

from edgeweave.edge.runtime import process
from edgeweave.edge.runtime.workspace import AppLayout, tail_lines


async def run_install(
    argv: list[str],
    layout: AppLayout,
    env: Mapping[str, str],
    *,
    timeout_s: float,
    tail_lines_count: int,
) -> str:
    """Run ``argv``; "" on success, else why it failed."""
    log_path = layout.install_log
    try:
        pid = process.spawn(argv, cwd=layout.root, env=env, log_path=log_path, truncate_log=True)
    except OSError as e:
        return f"install could not start {argv[0]!r}: {e.strerror or e}"
    watched = process.Watched(pid)
    try:
        finished = await watched.wait(timeout_s)
    finally:
        if not watched.exit.done():  # timed out or cancelled
            await process.stop_group(watched, 0.0)
        watched.close()
    if not finished:
        return f"install timed out after {timeout_s:g} s (logs/install.log has its output)"
    code = watched.exit.result()
    if code == 0:
        return ""
    tail = tail_lines(log_path, tail_lines_count)
    shown = " | ".join(tail) if tail else "(no output)"
    return f"install {process.describe_exit(code)}; last lines of logs/install.log: {shown}"
