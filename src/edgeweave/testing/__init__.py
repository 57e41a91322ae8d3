"""Public test harness: an in-process cloud (and, later, N agents) on loopback.

For users' own tests and for edgeweave's: real store, real TLS, real HTTP on port 0.
"""
