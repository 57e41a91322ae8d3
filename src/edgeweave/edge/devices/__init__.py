"""The agent's devices: the MQTT event bus, the twin host, upstream twin reports, mappers.

:mod:`.broker` runs the embedded MQTT broker; :mod:`.twinstore` keeps twins on disk;
:mod:`.host` applies Device objects and bus messages to twins through the pure engine in
:mod:`edgeweave.twin`; :mod:`.reporter` sends reported values to the cloud through the outbox;
:mod:`.mapperapps` starts the mappers the node's devices need.
"""

SYSTEM_NAMESPACE = "edgeweave-system"
"""Where the agent's own apps (the mappers) run: their status stays on the node."""
