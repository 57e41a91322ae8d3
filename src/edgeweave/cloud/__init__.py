"""The cloud process: composition root, HTTP API, store, controllers.

Imports only lower layers; never imports :mod:`edgeweave.edge`.
"""
