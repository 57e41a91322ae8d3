"""Sample edge app: a simulated occupancy counter for a camera node.

Every --interval seconds it updates a people count (a bounded random walk standing in for a
detector), writes it to state.json in its working directory and logs one line. With --check it
exits 0 only if state.json is fresh: that is the App's exec health probe.
"""

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

STATE = Path("state.json")


def check(interval: float) -> int:
    try:
        age = time.time() - json.loads(STATE.read_text())["updated_at"]
    except (OSError, ValueError, KeyError):
        return 1
    return 0 if age < 3 * interval else 1


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--interval", type=float, default=5.0)
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    if args.check:
        return check(args.interval)
    node = os.environ.get("EDGEWEAVE_NODE", "?")
    count = 0
    while True:
        count = max(0, min(40, count + random.choice((-2, -1, 0, 1, 2))))  # noqa: S311
        STATE.write_text(json.dumps({"count": count, "updated_at": time.time()}))
        print(f"node={node} occupancy={count}", flush=True)
        time.sleep(args.interval)


if __name__ == "__main__":
    sys.exit(main())
