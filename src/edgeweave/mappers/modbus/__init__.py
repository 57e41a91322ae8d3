"""The Modbus TCP mapper (``protocolName: modbus``) and a thermostat simulator to try it on.

- :mod:`.visitors` reads a device's ``configData`` (KubeEdge's names, COMPAT.md §1);
- :mod:`.codec` turns registers into reported strings and desired strings into registers
  (data types, byte and word swaps, scale) — pure;
- :mod:`.client` is the pymodbus client adapter (the only client-side pymodbus import);
- :mod:`.driver` is the :class:`~edgeweave.mappers.driver.Driver` built from those;
- :mod:`.thermostat` (pure physics) and :mod:`.simulator` (the pymodbus server) simulate
  smart-building thermostats for demos and tests.

Only :mod:`.client` and :mod:`.simulator` may import pymodbus (an import-linter contract).
"""
