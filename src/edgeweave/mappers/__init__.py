"""Mappers: the processes that talk to devices and to the agent's event bus.

A mapper is a separate process, started by the edge agent as a system app, that talks to the
agent **only over MQTT** in KubeEdge's ``$hw/events/...`` format (COMPAT.md §2), so a
KubeEdge mapper can take its place. What belongs here:

- the SDK (:mod:`.sdk`): the :class:`~.sdk.Driver` protocol a device driver implements and
  the :class:`~.sdk.MapperRunner` that does everything else (config file, MQTT, cycles,
  deltas, reloads, reconnects); its parts are :mod:`.config`, :mod:`.device`,
  :mod:`.runner`, :mod:`.bus`, :mod:`.values` and :mod:`.errors`;
- the built-in drivers: :mod:`.modbus` (Modbus TCP via pymodbus, with a thermostat
  simulator) and :mod:`.virtual` (simulated sensors, occupancy and actuators);
- :mod:`.builtin`, which names the driver factory of each built-in protocol.

Nothing here imports the agent (``edgeweave.edge``) or the cloud: the bus is the only link.
"""
