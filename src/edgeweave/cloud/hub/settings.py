"""Settings of the cloud hub (one section; the composition root fills it).

Kept beside the hub until the lead folds it into ``config/settings.py`` as ``CloudSettings.hub``;
the field names are the contract. Pure data: no I/O.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class HubSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    max_frame_bytes: int = Field(
        1 << 20, ge=4096, description="a larger frame closes that link with 1009"
    )
    ping_interval_s: float = Field(20.0, gt=0, description="websocket keepalive ping")
    ping_timeout_s: float = Field(20.0, gt=0, description="no pong within this: link broken")
    open_timeout_s: float = Field(
        10.0, gt=0, description="TLS + websocket handshake, and the wait for hello"
    )
    close_timeout_s: float = Field(5.0, gt=0, description="wait for the peer's close frame")
    heartbeat_interval_s: float = Field(15.0, gt=0, description="told to agents in welcome")
    node_grace_s: float = Field(40.0, gt=0, description="NotReady after this without heartbeat")
    node_status_refresh_s: float = Field(
        60.0, gt=0, description="Node.status rewritten at most this often without a transition"
    )
    lifecycle_sweep_s: float = Field(
        2.0, gt=0, description="how often the lifecycle controller looks at heartbeats"
    )
    send_queue_max: int = Field(
        1000, ge=16, description="queued control frames per session; overflow closes the link"
    )
    upstream_entries_per_turn: int = Field(
        5000, ge=1, description="upstream entries committed for one node before the next node"
    )
    log_stream_buffer: int = Field(
        256, ge=1, description="buffered log chunks per stream; a slower reader ends the stream"
    )
