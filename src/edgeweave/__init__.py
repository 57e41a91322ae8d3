"""edgeweave: an edge computing platform.

A cloud control plane manages a fleet of edge nodes and their devices, deploys apps to them,
keeps them running while cut off from the cloud, lets services find each other by name, and
runs versioned data pipelines. See DESIGN.md for the map; this package imports nothing heavy
at import time.
"""

__version__ = "0.1.0"
