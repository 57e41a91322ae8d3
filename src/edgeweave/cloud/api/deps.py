"""What the API handlers receive from the composition root (no globals)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from edgeweave.cloud.store.base import Store
from edgeweave.config.settings import ApiSettings


@dataclass
class ApiDeps:
    store: Store
    settings: ApiSettings
    version: str
    store_kind: str  # "sqlite" | "postgresql", reported by /version
    watch_slots: asyncio.Semaphore = field(init=False)

    def __post_init__(self) -> None:
        self.watch_slots = asyncio.Semaphore(self.settings.max_watches)
