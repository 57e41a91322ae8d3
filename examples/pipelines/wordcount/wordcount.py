"""Word count, the map step: one output file per input document, "word count" per line.

Usage: python3 wordcount.py INPUT_DIR OUTPUT_DIR. Under Pachyderm and edgeweave the pipeline
passes /pfs/docs and /pfs/out; edgeweave rewrites those arguments to the datum's directory.
"""

import re
import sys
from collections import Counter
from pathlib import Path

WORD = re.compile(r"[a-z']+")


def main(source: Path, out: Path) -> None:
    for doc in sorted(p for p in source.rglob("*") if p.is_file()):
        counts = Counter(WORD.findall(doc.read_text(encoding="utf-8").lower()))
        target = out / doc.relative_to(source)
        target.parent.mkdir(parents=True, exist_ok=True)
        lines = [f"{w} {n}\n" for w, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]
        target.write_text("".join(lines), encoding="utf-8")
        print(f"{doc.name}: {sum(counts.values())} words, {len(counts)} distinct")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
