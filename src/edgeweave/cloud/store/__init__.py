"""The cloud's state store: one interface (:mod:`.base`), SQLite and PostgreSQL adapters.

Use :func:`edgeweave.cloud.store.factory.open_store` with a URL; nothing else picks an adapter.
"""
