"""The cloud's public HTTP API (FastAPI on uvicorn), Kubernetes-shaped; see docs/api.md.

Only modules in this package import the web framework. Handlers translate HTTP to store and
model calls and back; they hold no state of their own beyond what :class:`ApiDeps` passes in.
"""
