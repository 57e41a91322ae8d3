"""A complete mapper written with the edgeweave SDK: devices that are files.

Linux exposes a lot of hardware as files: GPIO pins (/sys/class/gpio/gpio17/value), LEDs
(/sys/class/leds/*/brightness), hwmon sensors (/sys/class/hwmon/hwmon0/temp1_input, in
millidegrees). This mapper serves Devices with ``protocolName: sysfs``:

    spec.protocol.configData:          {root: /sys/class}
    spec.properties[].visitors.configData: {file: hwmon/hwmon0/temp1_input, scale: 0.001}

Run it next to an agent (docs/mappers.md):

    python examples/mappers/sysfs_mapper.py --mqtt mqtt://127.0.0.1:1884 \
        --node node-a --config sysfs.json
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from edgeweave.mappers.sdk import (
    ConfigFields,
    DeviceConfig,
    DeviceRefused,
    DeviceUnavailable,
    PropertyConfig,
    format_value,
    parse_number,
    run_mapper,
)


class SysfsDriver:
    def __init__(self, device: DeviceConfig) -> None:
        # check the manifest now: a ConfigError names the device and the field
        where = f"{device.where}.spec.protocol.configData"
        self.root = Path(ConfigFields(device.config_data, where, device=device.id).text("root"))
        self.files: dict[str, tuple[Path, float]] = {}
        for prop in device.properties:
            fields = ConfigFields(prop.visitor, prop.where, device=device.id)
            scale = fields.number("scale", 1.0, nonzero=True)
            self.files[prop.name] = (self.root / fields.text("file"), scale)

    async def open(self) -> None:
        if not self.root.is_dir():
            raise DeviceUnavailable(f"{self.root} is not there")

    async def read(self, prop: PropertyConfig) -> str:
        path, scale = self.files[prop.name]
        try:
            text = await asyncio.to_thread(path.read_text)
        except FileNotFoundError as e:
            raise DeviceUnavailable(f"{path} is gone") from e
        except OSError as e:
            raise DeviceRefused(f"cannot read {path}: {e}") from e
        try:
            return format_value(prop.model_type, float(text.strip()) * scale)
        except ValueError as e:
            raise DeviceRefused(f"{path} holds {text.strip()!r}, not a number") from e

    async def write(self, prop: PropertyConfig, value: str) -> None:
        path, scale = self.files[prop.name]
        try:
            raw = round(parse_number(prop.model_type, value) / scale)
            await asyncio.to_thread(path.write_text, f"{raw}\n")
        except ValueError as e:
            raise DeviceRefused(f"{prop.name}={value!r}: {e}") from e
        except OSError as e:
            raise DeviceRefused(f"cannot write {path}: {e}") from e

    async def aclose(self) -> None:
        pass


if __name__ == "__main__":
    run_mapper(SysfsDriver, protocol="sysfs")
