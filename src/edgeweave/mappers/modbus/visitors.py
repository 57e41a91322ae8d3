"""A Modbus device's ``configData`` as typed values, with errors that name the field.

The names are those of KubeEdge's Modbus mapper (COMPAT.md §1):

- ``Device.spec.protocol.configData``: ``ip``, ``port`` (default 502), ``slaveID`` (the unit
  id, default 1), ``timeout`` (milliseconds; 0 or absent: 1000);
- a property's ``visitors.configData``: ``register`` (``CoilRegister``,
  ``DiscreteInputRegister``, ``HoldingRegister``, ``InputRegister``), ``offset`` (0-based
  address), ``limit`` (registers or bits), ``scale`` (default 1), ``isSwap``,
  ``isRegisterSwap`` (default false) and optional ``dataType`` (see :mod:`.codec`; when absent
  it follows from ``limit`` and the model type: 1 → int16, 2 → int32 or float32, 4 → int64 or
  float64).

A ``ReadWrite`` property must sit in a holding register or a coil (the others cannot be
written). Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgeweave.errors import ConfigError
from edgeweave.mappers.config import DeviceConfig, PropertyConfig
from edgeweave.mappers.fields import ConfigFields
from edgeweave.mappers.modbus.codec import (
    DATA_TYPE_NAMES,
    DataType,
    Layout,
    RegisterKind,
    default_data_type,
)

REGISTER_NAMES = tuple(kind.value for kind in RegisterKind)
DEFAULT_PORT = 502
DEFAULT_TIMEOUT_MS = 1000
MAX_BITS = 2000  # the most coils one Modbus request reads
_NUMBER_TYPES = ("INT", "FLOAT", "DOUBLE", "BOOLEAN")


@dataclass(frozen=True, slots=True)
class Connection:
    host: str
    port: int
    unit: int  # slaveID
    timeout_s: float

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class Visitor:
    """Where one property lives on the device and how its registers read."""

    register: RegisterKind
    offset: int
    count: int  # registers (or bits) to read
    layout: Layout | None  # None for coils and discrete inputs


def parse_connection(device: DeviceConfig) -> Connection:
    fields = ConfigFields(
        device.config_data, f"{device.where}.spec.protocol.configData", device=device.id
    )
    timeout_ms = fields.integer("timeout", DEFAULT_TIMEOUT_MS, low=0, high=600_000)
    return Connection(
        host=fields.text("ip"),
        port=fields.integer("port", DEFAULT_PORT, low=1, high=65535),
        unit=fields.integer("slaveID", 1, low=0, high=255),
        timeout_s=(timeout_ms or DEFAULT_TIMEOUT_MS) / 1000,  # 0 means "not set"
    )


def parse_visitor(device: DeviceConfig, prop: PropertyConfig) -> Visitor:
    fields = ConfigFields(prop.visitor, prop.where, device=device.id)
    if not prop.visitor:
        raise fields.error("register", "is missing: the property has no visitors.configData")
    if prop.model_type not in _NUMBER_TYPES:
        raise ConfigError(
            f"device {device.id}: property {prop.name!r} is {prop.model_type}; the Modbus "
            f"mapper reads {', '.join(_NUMBER_TYPES)} properties"
        )
    register = RegisterKind(fields.choice("register", REGISTER_NAMES))
    offset = fields.integer("offset", low=0, high=65535)
    if prop.read_write and not register.writable:
        raise fields.error(
            "register",
            f"property {prop.name!r} is ReadWrite but a {register.value} cannot be written; "
            "use HoldingRegister or CoilRegister, or make it ReadOnly in the model",
        )
    if register.is_bit:
        count = fields.integer("limit", 1, low=1, high=1)
        return Visitor(register, offset, count, None)
    data_type = _data_type(fields, prop)
    count = fields.integer("limit", data_type.registers, low=1, high=4)
    if count != data_type.registers:
        raise fields.error(
            "limit",
            f"{count} registers, but dataType {data_type.label} takes {data_type.registers}",
        )
    if offset + count > 65536:
        raise fields.error("offset", f"{offset} + limit {count} runs past register 65535")
    layout = Layout(
        data_type=data_type,
        scale=fields.number("scale", 1.0, nonzero=True),
        swap_bytes=fields.boolean("isSwap", False),
        swap_registers=fields.boolean("isRegisterSwap", False),
    )
    return Visitor(register, offset, count, layout)


def _data_type(fields: ConfigFields, prop: PropertyConfig) -> DataType:
    if fields.has("dataType"):
        return DataType.named(fields.choice("dataType", DATA_TYPE_NAMES))
    limit = fields.integer("limit", 1, low=1, high=4)
    try:
        return default_data_type(limit, prop.model_type)
    except ValueError as e:
        raise fields.error("limit", str(e)) from e
