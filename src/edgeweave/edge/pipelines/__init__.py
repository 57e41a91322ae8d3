"""The agent's pipeline side: the pipelines the cloud places on this node, run on its own repos.

Loaded by the agent only once the node holds a ``Pipeline`` (:mod:`.host`); the local put
endpoint for `edgeweave edge file put` is :mod:`.putserver`. The engine itself (repos, datums,
jobs, the scheduler) is :mod:`edgeweave.pipelines`; this package only hosts it on the node.
"""
