"""Typed settings per component, layered file < environment < command line.

One section per component with units in names; `edgeweave config defaults` prints them.
Nothing here reads a file or the environment at import time.
"""
