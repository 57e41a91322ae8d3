"""Pure data: resource kinds, object metadata, label selectors, patches (no I/O).

Everything here is importable by every other layer. Nothing here opens a file or socket.
"""
