"""`python -m edgeweave` runs the CLI (the demo starts child processes this way)."""

import sys

from edgeweave.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
