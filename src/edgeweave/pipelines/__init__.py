"""Data workflows (DESIGN.md §6): Pachyderm pipeline specs, globs and datums, repos of
content-addressed chunks, and running a datum's code under the ``/pfs`` contract.

What belongs here: the engine — pure rules (specs, globs, datum identity and hashing, the
incremental plan), the repo store (chunks on disk, metadata on the SQLite kit) and the datum
runner (a process per datum). What does not: anything that knows about the cloud, the edge
agent, the link or the API. The hosts that schedule jobs, move commits between nodes and report
upstream live in ``cloud`` and ``edge``; they import this package, never the other way round.
"""
