"""Just enough HTTP/1.x to hash on a request header: find a header's value in a request head.

The proxy peeks at most a bounded head and forwards those bytes unchanged; this module only
reads them. It must not do I/O, and must not try to be an HTTP parser (no bodies, no
continuation lines, no validation beyond what finding one header needs).
"""

from __future__ import annotations

HEAD_END = b"\r\n\r\n"


def head_complete(data: bytes | bytearray) -> bool:
    return HEAD_END in data


def header_value(head: bytes, name: str) -> str | None:
    """The first value of header ``name`` (case-insensitive) in ``head``, or None.

    ``head`` may be cut short; only complete header lines count. Non-UTF-8 bytes are replaced.
    """
    block = head.split(HEAD_END, 1)[0]
    lines = block.split(b"\r\n")
    if len(lines) < 2 or b"HTTP/" not in lines[0]:
        return None
    complete = lines[1:] if HEAD_END in head else lines[1:-1]
    wanted = name.strip().lower().encode("ascii", "replace")
    for line in complete:
        field, sep, value = line.partition(b":")
        if sep and field.strip().lower() == wanted:
            return value.strip().decode("utf-8", "replace")
    return None
