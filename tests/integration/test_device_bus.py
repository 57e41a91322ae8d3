"""The agent's twin host on the MQTT bus, driven by a real MQTT client (paho) with KubeEdge
payloads, through the embedded broker and through mosquitto."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from devices_rig import MODEL, NODE, PahoClient, Rig, device, open_rig

from edgeweave.protocol import messages as m
from edgeweave.twin.messages import Versions
from edgeweave.twin.topics import device_ref

TOPIC = "$hw/events/device/default/thermo-1"
THERMO = device_ref("default", "thermo-1")


@pytest.fixture(params=["embedded", "mosquitto"])
async def rig(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Rig]:
    broker = "embedded"
    if request.param == "mosquitto":
        broker = request.getfixturevalue("mosquitto_url")
    async with open_rig(tmp_path, broker) as r:
        await r.put(MODEL, device())
        async with asyncio.timeout(10):
            while r.host.twin(THERMO) is None:
                await asyncio.sleep(0.01)  # polling the host's state, bounded by the timeout
        yield r


@pytest.fixture
async def mapper(rig: Rig) -> AsyncIterator[PahoClient]:
    client = PahoClient(rig.url)
    await client.subscribe("$hw/events/device/#", f"$hw/events/node/{NODE}/#")
    yield client
    client.close()


def update(value: str, event_id: str = "e1") -> dict[str, Any]:
    return {
        "event_id": event_id,
        "timestamp": 1_700_000_000_000,
        "twin": {"temperature": {"actual": {"value": value}, "metadata": {"type": "float"}}},
    }


async def test_a_mapper_update_gets_a_result_and_reaches_the_outbox(
    rig: Rig, mapper: PahoClient
) -> None:
    mapper.publish(f"{TOPIC}/twin/update", update("21.5"))
    _topic, body = await mapper.next(lambda t, _b: t.endswith("/twin/update/result"))
    assert isinstance(body, dict) and body["event_id"] == "e1"
    assert body["twin"]["temperature"]["actual"]["value"] == "21.5"
    found = await rig.wait_entries("device.twin", lambda p: p.get("samples"))
    report = found[-1]
    assert report["device"] == {"namespace": "default", "name": "thermo-1"}
    assert report["samples"][0]["property"] == "temperature"
    assert report["samples"][0]["value"] == "21.5"
    twins = {t["propertyName"]: t for t in report["twins"]}
    assert twins["temperature"]["reported"]["value"] == "21.5"
    assert twins["target"]["observedDesired"]["value"] == "21"


async def test_a_cloud_desired_value_reaches_the_mapper_as_a_delta(
    rig: Rig, mapper: PahoClient
) -> None:
    await rig.put(device(target="23.5"))
    _, body = await mapper.next(lambda t, _b: t.endswith("/twin/update/delta"))
    assert isinstance(body, dict)
    assert body["delta"] == {"target": "23.5"}
    # the twin reports the new observed desired value to the cloud (or this times out)
    await rig.wait_entries(
        "device.twin",
        lambda p: any(t.get("observedDesired", {}).get("value") == "23.5" for t in p["twins"]),
    )


async def test_twin_get_and_membership_get_answer_in_kubeedge_shape(
    rig: Rig, mapper: PahoClient
) -> None:
    mapper.publish(f"{TOPIC}/twin/get", {"event_id": "g1"})
    _, body = await mapper.next(lambda t, _b: t.endswith("/twin/get/result"))
    assert isinstance(body, dict) and body["event_id"] == "g1"
    assert body["twin"]["target"]["expected"]["value"] == "21"
    mapper.publish(f"$hw/events/node/{NODE}/membership/get", {"event_id": "m1"})
    _, body = await mapper.next(lambda t, _b: t.endswith("/membership/get/result"))
    assert isinstance(body, dict)
    assert [d["id"] for d in body["devices"]] == ["default/thermo-1"]
    mapper.publish("$hw/events/device/default/nope/twin/get", {"event_id": "g2"})
    _, body = await mapper.next(lambda t, _b: "/nope/twin/get/result" in t)
    assert isinstance(body, dict) and body.get("code") == 404


async def test_state_update_is_answered_and_reported_at_once(rig: Rig, mapper: PahoClient) -> None:
    mapper.publish(f"{TOPIC}/state/update", {"event_id": "s1", "timestamp": 1, "state": "online"})
    _, body = await mapper.next(lambda t, _b: t.endswith("/state/update/result"))
    assert isinstance(body, dict) and body["device"]["state"] == "online"
    await rig.wait_entries("device.twin", lambda p: p["state"] == "online")


async def test_a_local_desired_write_is_reported_with_its_base(
    rig: Rig, mapper: PahoClient
) -> None:
    local = {"event_id": "l1", "twin": {"target": {"expected": {"value": "25"}}}}
    mapper.publish(f"{TOPIC}/twin/update", local)
    _, body = await mapper.next(lambda t, _b: t.endswith("/twin/update/delta"))
    assert isinstance(body, dict) and body["delta"] == {"target": "25"}
    found = await rig.wait_entries("device.twin", lambda p: p.get("localDesired"))
    assert found[-1]["localDesired"][0] | {"timestamp": 0} == {
        "property": "target",
        "value": "25",
        "base": "21",
        "timestamp": 0,
    }


async def test_a_new_cloud_value_replaces_a_local_one(rig: Rig, mapper: PahoClient) -> None:
    local = {"event_id": "l1", "twin": {"target": {"expected": {"value": "25"}}}}
    mapper.publish(f"{TOPIC}/twin/update", local)
    await rig.wait_entries("device.twin", lambda p: p.get("localDesired"))
    await rig.put(device(target="19"))  # the cloud changed it too, meanwhile: the cloud wins
    await mapper.next(
        lambda t, b: t.endswith("/twin/update/delta") and b["delta"] == {"target": "19"}
    )
    twin = rig.host.twin(THERMO)
    assert twin is not None and twin.properties["target"].expected is not None
    assert twin.properties["target"].expected.value == "19"
    assert twin.properties["target"].expected_version.cloud == 2
    assert twin.properties["target"].expected_version.edge == 1


async def test_the_cloud_adopting_a_local_value_changes_nothing_on_the_device(
    rig: Rig, mapper: PahoClient
) -> None:
    mapper.publish(
        f"{TOPIC}/twin/update",
        {"event_id": "l1", "twin": {"target": {"expected": {"value": "25"}}}},
    )
    await rig.wait_entries("device.twin", lambda p: p.get("localDesired"))
    await rig.put(device(target="25"))  # what the cloud does when its value was the base
    async with asyncio.timeout(10):
        while rig.host.held[THERMO].cloud_desired.get("target") != "25":
            await asyncio.sleep(0.01)  # polling the host's state, bounded by the timeout
    twin = rig.host.twin(THERMO)
    assert twin is not None and twin.properties["target"].expected_version == Versions(
        1, 1
    )  # no new cloud write
    await rig.put(device(target="26"))  # a later cloud change is an ordinary one
    await mapper.next(
        lambda t, b: t.endswith("/twin/update/delta") and b["delta"] == {"target": "26"}
    )


def _malformed_payloads() -> list[bytes]:
    """Property-based: raw bytes, and JSON objects shaped almost like a twin update."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=600)
    values = st.recursive(
        scalars,
        lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=20), c, max_size=3),
        max_leaves=8,
    )
    keys = st.sampled_from(["temperature", "target", "", "bad key!", "x" * 200]) | st.text(
        max_size=10
    )
    twin = st.dictionaries(
        keys,
        st.fixed_dictionaries(
            {}, optional={"actual": values, "expected": values, "metadata": values}
        )
        | values,
        max_size=3,
    )
    updates = st.fixed_dictionaries(
        {}, optional={"event_id": values, "timestamp": values, "twin": twin | values}
    )
    payloads = st.binary(max_size=200) | updates.map(lambda d: json.dumps(d).encode())
    found: list[bytes] = []

    @settings(max_examples=150, database=None, suppress_health_check=list(HealthCheck))
    @given(payloads)
    def collect(payload: bytes) -> None:
        found.append(payload)

    collect()
    return found


async def test_malformed_payloads_get_error_results_and_the_bus_stays_up(
    rig: Rig, mapper: PahoClient
) -> None:
    payloads = _malformed_payloads()
    for payload in payloads:
        mapper.publish(f"{TOPIC}/twin/update", payload)
    codes = []
    for _ in payloads:
        _, body = await mapper.next(lambda t, _b: t.endswith("/twin/update/result"))
        assert isinstance(body, dict), body
        codes.append(body.get("code"))
    assert 500 not in codes
    assert set(codes) <= {None, 400, 404}  # None: the rare payload that is a valid update
    assert 400 in codes
    mapper.publish(f"{TOPIC}/twin/update", update("22.5", "after"))
    _, body = await mapper.next(
        lambda t, b: t.endswith("/twin/update/result") and b.get("event_id") == "after"
    )
    assert isinstance(body, dict) and "code" not in body


async def test_a_deleted_device_leaves_the_membership(rig: Rig, mapper: PahoClient) -> None:
    ref = THERMO
    await rig.sync.persist([m.Delete(ref=ref, rv=rig.rv + 1)])
    _, body = await mapper.next(lambda t, _b: t.endswith("/membership/updated"))
    assert isinstance(body, dict)
    assert [d["id"] for d in body["removed_devices"]] == ["default/thermo-1"]
    assert rig.host.twin(THERMO) is None


async def test_a_model_change_reaches_the_devices_using_it(rig: Rig) -> None:
    model = json.loads(json.dumps(MODEL))
    model["spec"]["properties"].append(
        {"name": "humidity", "type": "INT", "accessMode": "ReadOnly"}
    )
    changed = device()
    changed["spec"]["properties"].append({"name": "humidity"})
    await rig.put(changed)  # the device names the new property, the model does not yet
    await rig.put(model)  # only the model changes now: its devices are looked at again
    async with asyncio.timeout(10):
        while True:
            twin = rig.host.twin(THERMO)
            humidity = twin.properties.get("humidity") if twin is not None else None
            if humidity is not None and humidity.type == "int":
                break
            await asyncio.sleep(0.01)  # polling the host's state, bounded by the timeout
