"""Text formats several layers check the same way (pure, and free of pydantic so the agent
can import it): content digests.
"""

from __future__ import annotations

import re

# a content address: "sha256:" and 64 lowercase hex digits, nothing before or after
DIGEST_PATTERN = r"^sha256:[0-9a-f]{64}\Z"
DIGEST_RE = re.compile(DIGEST_PATTERN)
