"""The edge agent: composition root, local store, sync, runtime, devices, mesh and pipeline hosts.

What belongs here: everything that runs in ``edgeweave edge run`` on a node — the local
metadata store and the durable upstream outbox (SQLite files under the agent's data dir), the
link loop and downstream sync, the process runtime, and the hosts that run the pure engines
(twin, mesh, pipelines) on the node.

What does not: anything of the cloud. This package never imports :mod:`edgeweave.cloud`; both
sides meet only in :mod:`edgeweave.protocol` and :mod:`edgeweave.transport`. Only
``edge.store`` and ``edge.outbox`` import :mod:`sqlite3`.
"""
