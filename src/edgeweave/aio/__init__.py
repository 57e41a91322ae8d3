"""Domain-free asyncio kits: backoff, injectable clocks, supervised tasks, bounded queues,
a SQLite connection on its own thread, short GC pauses for long-running servers.

What belongs here: small tools every long-running component needs and that know nothing of
clouds, edges, resources or messages. What does not: anything that names a domain concept, and
any import of edgeweave beyond ``edgeweave.errors``.
"""
