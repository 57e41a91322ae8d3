"""Link seam: websocket, in-memory; TLS material helpers.

The cloud and the edge both build on this layer; it never imports :mod:`edgeweave.cloud` or
:mod:`edgeweave.edge`.
"""
