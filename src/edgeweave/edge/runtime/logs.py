"""Size-based rotation of an app's log by copy-truncate.

The app writes ``logs/app.log`` through a descriptor it inherited (opened with O_APPEND), so
the runtime cannot reopen it for the app: it copies the file to ``app.log.1`` (shifting older
copies up to ``keep``) and truncates the original in place; the app's next write lands at the
new end. A few lines written between the copy and the truncate can be lost — the accepted
price of copy-truncate.

This module only moves bytes between files; it does not decide when to run.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path


def rotate_if_needed(log: Path, max_bytes: int, keep: int) -> bool:
    """Rotate ``log`` when it is larger than ``max_bytes``; True when it did."""
    try:
        size = log.stat().st_size
    except FileNotFoundError:
        return False
    if size <= max_bytes:
        return False
    if keep <= 0:
        os.truncate(log, 0)
        return True
    oldest = log.with_name(f"{log.name}.{keep}")
    oldest.unlink(missing_ok=True)
    for n in range(keep - 1, 0, -1):
        src = log.with_name(f"{log.name}.{n}")
        if src.exists():
            os.replace(src, log.with_name(f"{log.name}.{n + 1}"))
    shutil.copyfile(log, log.with_name(f"{log.name}.1"))
    os.truncate(log, 0)
    return True
