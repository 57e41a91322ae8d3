"""KubeEdge ``devices.kubeedge.io/v1beta1`` ``DeviceModel`` and ``Device`` (COMPAT.md §1).

Real KubeEdge manifests validate unchanged: fields KubeEdge defines but edgeweave does not
check are kept as they are, and protocol ``configData`` maps are free. What COMPAT.md lists is
checked: property types and access modes, ``reportCycle``/``collectCycle`` as integers in
**milliseconds**, and the Modbus visitor fields when the protocol is Modbus.

Checks that need both objects (a desired value against its model's property type) are in
:mod:`edgeweave.models.device_checks`, re-exported here. This module does no I/O.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, field_validator, model_validator

from edgeweave.models.base import NonNegativeInt, OpenModel, Resource, duplicates, raise_problems
from edgeweave.models.device_checks import (
    PROPERTY_TYPES,
    parse_property_value,
    validate_device_against_model,
)

__all__ = [
    "PROPERTY_TYPES",
    "Device",
    "DeviceModel",
    "parse_property_value",
    "validate_device_against_model",
]

DEVICES_API_VERSION = "devices.kubeedge.io/v1beta1"
PropertyType = Literal["INT", "FLOAT", "DOUBLE", "STRING", "BOOLEAN", "BYTES", "STREAM"]
AccessMode = Literal["ReadWrite", "ReadOnly"]
MODBUS_REGISTERS = ("CoilRegister", "DiscreteInputRegister", "HoldingRegister", "InputRegister")


def _scalar_text(value: Any) -> Any:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value  # a bare YAML number: accepted, compared numerically
    raise ValueError(f'must be a string such as "100", got {value!r}')


# a property's minimum / maximum: a string in KubeEdge manifests (a bare number is tolerated)
Bound = Annotated[Any, AfterValidator(_scalar_text)]


class ModelProperty(OpenModel):
    name: str = Field(min_length=1)
    description: str | None = None
    type: PropertyType
    accessMode: AccessMode | None = None  # absent means ReadWrite
    minimum: Bound = None
    maximum: Bound = None
    unit: str | None = None
    visitors: dict[str, Any] | None = None


class DeviceModelSpec(OpenModel):
    protocol: str | None = None
    protocolConfigData: dict[str, Any] | None = None
    properties: list[ModelProperty] | None = None

    @model_validator(mode="after")
    def _unique(self) -> DeviceModelSpec:
        names = [p.name for p in self.properties or []]
        raise_problems(
            [(f"properties[{i}].name", "duplicate property name") for i in duplicates(names)]
        )
        return self


class DeviceModel(Resource):
    apiVersion: Literal["devices.kubeedge.io/v1beta1"]
    kind: Literal["DeviceModel"]
    spec: DeviceModelSpec
    status: dict[str, Any] | None = None


class DeviceModelRef(OpenModel):
    name: str = Field(min_length=1)


class ProtocolConfig(OpenModel):
    protocolName: str = Field(min_length=1)
    configData: dict[str, Any] | None = None


class VisitorConfig(OpenModel):
    protocolName: str | None = None
    configData: dict[str, Any] | None = None


class TwinProperty(OpenModel):
    """A desired (or reported) value: always a string in KubeEdge manifests."""

    value: Any
    metadata: dict[str, Any] | None = None

    @field_validator("value")
    @classmethod
    def _value(cls, v: Any) -> Any:
        if not isinstance(v, str):
            raise ValueError(f'must be a string; quote it in YAML: "{v}"')
        return v


class DeviceProperty(OpenModel):
    name: str = Field(min_length=1)
    desired: TwinProperty | None = None
    visitors: VisitorConfig | None = None
    reportCycle: NonNegativeInt | None = None  # milliseconds
    collectCycle: NonNegativeInt | None = None  # milliseconds
    reportToCloud: bool | None = None
    pushMethod: dict[str, Any] | None = None


class DeviceMethod(OpenModel):
    name: str = Field(min_length=1)
    description: str | None = None
    propertyNames: list[str] | None = None


class StateReport(OpenModel):
    reportToCloud: bool | None = None
    reportCycle: NonNegativeInt | None = None  # milliseconds


class DeviceSpec(OpenModel):
    deviceModelRef: DeviceModelRef
    nodeName: str | None = None
    protocol: ProtocolConfig | None = None
    methods: list[DeviceMethod] | None = None
    stateReport: StateReport | None = None
    properties: list[DeviceProperty] | None = None

    @model_validator(mode="after")
    def _cross_fields(self) -> DeviceSpec:
        problems: list[tuple[str, str]] = []
        props = self.properties or []
        for i in duplicates([p.name for p in props]):
            problems.append((f"properties[{i}].name", "duplicate property name"))
        for i in duplicates([m.name for m in self.methods or []]):
            problems.append((f"methods[{i}].name", "duplicate method name"))
        device_protocol = self.protocol.protocolName if self.protocol else ""
        if self.protocol and is_modbus(device_protocol):
            problems += _modbus_connection(self.protocol.configData or {}, "protocol.configData")
        for i, prop in enumerate(props):
            visitors = prop.visitors
            if visitors is None or visitors.configData is None:
                continue
            if is_modbus(visitors.protocolName or device_protocol):
                where = f"properties[{i}].visitors.configData"
                problems += _modbus_visitor(visitors.configData, where)
        raise_problems(problems)
        return self


class TwinValue(OpenModel):
    value: Any = None
    metadata: dict[str, Any] | None = None


class Twin(OpenModel):
    propertyName: str
    reported: TwinValue | None = None
    observedDesired: TwinValue | None = None


class DeviceStatus(OpenModel):
    """Twins as the v1.15 to v1.22 layout has them; ``stateReport`` / ``reportToCloud`` /
    ``reportCycle`` are accepted here too, where older manifests put them."""

    twins: list[Twin] | None = None
    state: str | None = None
    lastOnlineTime: str | None = None
    stateReport: StateReport | None = None
    reportToCloud: bool | None = None
    reportCycle: NonNegativeInt | None = None


class Device(Resource):
    apiVersion: Literal["devices.kubeedge.io/v1beta1"]
    kind: Literal["Device"]
    spec: DeviceSpec
    status: DeviceStatus | None = None


def is_modbus(protocol_name: str | None) -> bool:
    return bool(protocol_name) and str(protocol_name).lower().startswith("modbus")


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return None


def _int_problem(
    config: dict[str, Any], key: str, low: int, high: int | None, where: str
) -> list[tuple[str, str]]:
    if key not in config:
        return []
    number = _as_int(config[key])
    if number is None or number < low or (high is not None and number > high):
        upper = f"..{high}" if high is not None else " or more"
        return [(f"{where}.{key}", f"must be an integer {low}{upper}, got {config[key]!r}")]
    return []


def _modbus_connection(config: dict[str, Any], where: str) -> list[tuple[str, str]]:
    problems = _int_problem(config, "port", 1, 65535, where)
    problems += _int_problem(config, "slaveID", 0, 255, where)
    problems += _int_problem(config, "timeout", 0, None, where)
    if "ip" in config and not isinstance(config["ip"], str):
        problems.append((f"{where}.ip", "must be a string (the device's IP address or host)"))
    return problems


def _modbus_visitor(config: dict[str, Any], where: str) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    register = config.get("register")
    if register not in MODBUS_REGISTERS:
        got = "missing" if register is None else f"got {register!r}"
        problems.append(
            (f"{where}.register", f"must be one of {', '.join(MODBUS_REGISTERS)} ({got})")
        )
    problems += _int_problem(config, "offset", 0, 65535, where)
    problems += _int_problem(config, "limit", 1, 65535, where)
    scale = config.get("scale")
    if scale is not None and (
        isinstance(scale, bool) or not isinstance(scale, int | float) or scale == 0
    ):
        problems.append(
            (f"{where}.scale", f"must be a non-zero number (reported = raw * scale), got {scale!r}")
        )
    for flag in ("isSwap", "isRegisterSwap"):
        if flag in config and not isinstance(config[flag], bool):
            problems.append((f"{where}.{flag}", f"must be true or false, got {config[flag]!r}"))
    return problems
