"""A watch event carries the stored JSON text and decodes it only when the object is read;
the API writes the text as it is into the event's line."""

from __future__ import annotations

import json

import pytest

from edgeweave.cloud.api.watch import _event_line
from edgeweave.cloud.store.base import WatchEvent

TEXT = '{"kind":"Device","metadata":{"name":"caf\u00e9","resourceVersion":"7"}}'


def test_the_text_passes_through_and_the_object_is_decoded_on_demand() -> None:
    event = WatchEvent("MODIFIED", None, 7, text=TEXT, kind="Device")
    assert event._object is None  # nothing decoded yet
    line = _event_line(event)
    assert line.endswith(b"\n") and TEXT.encode() in line
    assert json.loads(line) == {"type": "MODIFIED", "object": json.loads(TEXT)}
    assert event._object is None  # the line did not need it
    assert event.object["metadata"]["name"] == "caf\u00e9"


def test_an_event_made_from_an_object_encodes_it_when_asked() -> None:
    obj = {"kind": "App", "metadata": {"name": "web"}}
    event = WatchEvent("ADDED", obj, 3)
    assert json.loads(event.text) == obj
    assert event == WatchEvent("ADDED", None, 3, text=event.text)
    assert event != WatchEvent("DELETED", obj, 3)
    with pytest.raises(ValueError, match="needs the object"):
        WatchEvent("ADDED", None, 1)
