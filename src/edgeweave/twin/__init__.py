"""The device twin engine: KubeEdge twin payloads, per-property versions, delta, document.

Pure rules the edge agent (and the cloud) host: :mod:`.topics` and :mod:`.payloads` turn
KubeEdge ``$hw/events/...`` topics and MQTT payloads (COMPAT.md §2) into typed messages and
back; :mod:`.state` applies updates to a :class:`~.state.DeviceTwin` and says what to publish;
:mod:`.dispatch` runs one incoming message end to end and never raises.

Nothing in this package opens a socket or a file, reads a clock or starts a task: time comes
in as ``now_ms`` arguments, and the caller publishes what the functions return.
"""
