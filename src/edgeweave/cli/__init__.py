"""The ``edgeweave`` command line: thin commands over the public HTTP API.

Entry point :func:`edgeweave.cli.main.main`. One module per command (``apply``, ``get``, ...),
plus helpers for reading manifests and rendering output. Commands talk to the cloud only
through :mod:`edgeweave.client`; nothing here runs at import time.
"""
