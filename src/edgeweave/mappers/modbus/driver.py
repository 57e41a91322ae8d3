"""The Modbus TCP driver: a device's properties read and written through its registers.

:func:`modbus_driver` is the :data:`~edgeweave.mappers.driver.DriverFactory` of the
``modbus`` protocol. It parses the device's ``configData`` and every property's visitor up
front (:mod:`.visitors`), so a bad manifest is a ConfigError naming the field before anything
connects. The driver then reads ``limit`` registers (or one bit) at ``offset`` and decodes
them (:mod:`.codec`): reported = raw x scale; a desired value is divided by ``scale`` and
written to the holding register(s) or coil.

Must not import pymodbus (:mod:`.client` does) or know about MQTT.
"""

from __future__ import annotations

from edgeweave.mappers.config import DeviceConfig, PropertyConfig
from edgeweave.mappers.errors import DeviceRefused
from edgeweave.mappers.modbus.client import ModbusTcpConnection
from edgeweave.mappers.modbus.codec import (
    decode_bit,
    decode_registers,
    encode_bit,
    encode_registers,
)
from edgeweave.mappers.modbus.visitors import (
    Connection,
    Visitor,
    parse_connection,
    parse_visitor,
)


class ModbusDriver:
    def __init__(self, device: DeviceConfig) -> None:
        self.device = device
        self.connection: Connection = parse_connection(device)
        self.visitors: dict[str, Visitor] = {
            prop.name: parse_visitor(device, prop) for prop in device.properties
        }
        self._client: ModbusTcpConnection | None = None

    async def open(self) -> None:
        c = self.connection
        client = ModbusTcpConnection(c.host, c.port, c.unit, timeout_s=c.timeout_s)
        try:
            await client.connect()
        except BaseException:
            client.close()
            raise
        self._client = client

    async def read(self, prop: PropertyConfig) -> str:
        client, visitor = self._target(prop)
        if visitor.layout is None:
            bits = await client.read_bits(visitor.register, visitor.offset, visitor.count)
            return decode_bit(bits[0], prop.model_type)
        words = await client.read_registers(visitor.register, visitor.offset, visitor.count)
        try:
            return decode_registers(words, visitor.layout, prop.model_type)
        except ValueError as e:
            raise DeviceRefused(f"{prop.name}: {e}") from e

    async def write(self, prop: PropertyConfig, value: str) -> None:
        client, visitor = self._target(prop)
        layout = visitor.layout
        try:
            if layout is None:
                state = encode_bit(value, prop.model_type)
            else:
                words = encode_registers(value, layout, prop.model_type)
        except ValueError as e:
            raise DeviceRefused(f"{prop.name}={value!r} cannot be written: {e}") from e
        if layout is None:
            await client.write_coil(visitor.offset, state)
        else:
            await client.write_registers(visitor.offset, words)

    async def aclose(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def _target(self, prop: PropertyConfig) -> tuple[ModbusTcpConnection, Visitor]:
        visitor = self.visitors.get(prop.name)
        if visitor is None:
            raise DeviceRefused(f"{prop.name} is not a property of device {self.device.id}")
        if self._client is None:
            raise DeviceRefused(f"device {self.device.id} is not open")
        return self._client, visitor


def modbus_driver(device: DeviceConfig) -> ModbusDriver:
    """The driver factory of the ``modbus`` protocol (ConfigError for a bad manifest)."""
    return ModbusDriver(device)
