"""The Rhombus simulator's clip making over real HTTP, every exchange checked against the spec."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import httpx
import pytest

from bot.rhombus import RejectedError, RhombusClient
from bot.rhombus_answers import Splice
from standins.rhombus import GET_CLIP_PATH, LOBBY_CAMERA, ManualClock, RhombusSimulator, fails
from standins.rhombus_splicing import (
    CAMERA_LOCATIONS_PATH,
    CANCEL_SPLICE_PATH,
    MAX_SPLICE_PATH,
    PRESENCE_PATH,
    RETRY_SPLICE_PATH,
    SPLICE_PATH,
)
from tests.contract.openapi import validate_exchange

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

EPOCH = 1_767_225_600.0
AUTH = {"x-auth-apikey": "test-key", "x-auth-scheme": "api-token"}


@pytest.fixture
def clock() -> ManualClock:
    """A clock that moves only when a test moves it."""
    return ManualClock()


@pytest.fixture
async def sim(clock: ManualClock) -> AsyncIterator[RhombusSimulator]:
    """A running simulator; afterwards every exchange it recorded must match the spec."""
    async with RhombusSimulator(api_key="test-key", clock=clock, seed=3, epoch=EPOCH) as simulator:
        yield simulator
    for exchange in simulator.exchanges:
        validate_exchange(exchange)


@pytest.fixture
async def client(sim: RhombusSimulator) -> AsyncIterator[RhombusClient]:
    """The bot's own Rhombus client, pointed at the simulator."""
    async with RhombusClient(api_key="test-key", base_url=sim.url) as rhombus:
        yield rhombus


def splice(**changes: object) -> Splice:
    """A one-minute clip of the lobby camera, ten minutes before the epoch."""
    fields: dict[str, Any] = {
        "devices": [f"{LOBBY_CAMERA}.v0", f"{LOBBY_CAMERA}.a0"],
        "start_ms": int(EPOCH - 600) * 1000,
        "duration_sec": 60,
        "title": "Front door",
        "description": "",
        "visibility": "ORG_WIDE",
    }
    return Splice(**(fields | changes))


async def test_a_spliced_clip_progresses_like_any_other(client, clock):
    """spliceV3 returns a uuid getClipWithProgress knows, with the footage asked for."""
    clip_uuid = await client.splice(splice())
    clock.advance(60)
    clip = await client.get_clip(clip_uuid)

    assert ("Front door", "COMPLETE", 60) == (clip.title, clip.status, clip.duration_sec)
    assert [f"{LOBBY_CAMERA}.v0", f"{LOBBY_CAMERA}.a0"] == clip.device_uuids
    assert int(EPOCH - 600) * 1000 == clip.timestamp_ms


async def test_a_new_clip_can_be_unknown_at_first(sim, client, clock):
    """With `unknown_for`, getClipWithProgress answers `error: true` until that time passes."""
    sim.splicing.unknown_for = 2.0
    clip_uuid = await client.splice(splice())
    with pytest.raises(RejectedError):
        await client.get_clip(clip_uuid)
    clock.advance(2)
    assert clip_uuid == (await client.get_clip(clip_uuid)).uuid


async def test_refusals_are_errors_inside_a_200(sim, client):
    """Unknown devices, too long a clip, and a set error come back as Rhombus's errorMsg."""
    refusals = []
    for wanted in (splice(devices=["AAAAAAAAAAAAAAAAAAAAAA.v0"]), splice(duration_sec=7200)):
        with pytest.raises(RejectedError) as refused:
            await client.splice(wanted)
        refusals.append(str(refused.value))
    sim.splicing.error_msg = "Camera storage is full"
    with pytest.raises(RejectedError, match="Camera storage is full"):
        await client.splice(splice())
    assert ["Invalid device uuid", "Duration must be between 1 and 3600 seconds"] == refusals


async def test_max_duration_presence_and_locations(sim, client):
    """The organisation's cap (or none), footage windows and camera locations."""
    assert 3600 == await client.max_splice_duration()
    sim.splicing.max_duration = None
    assert await client.max_splice_duration() is None
    sim.splicing.presence[LOBBY_CAMERA] = [(100, 50), (900, 10)]
    windows = await client.presence_windows(LOBBY_CAMERA, 120, 60)
    assert [(100, 50)] == [(w.start_seconds, w.duration_seconds) for w in windows]
    locations = await client.camera_locations()
    assert ("Lobby", "Headquarters") == (
        locations[LOBBY_CAMERA].camera_name,
        locations[LOBBY_CAMERA].location_name,
    )


async def test_cancel_and_retry(sim, client, clock):
    """Cancel deletes the clip; Retry restarts a failed one and refuses any other."""
    sim.splicing.script = fails(1)
    failing = await client.splice(splice())
    clock.advance(10)
    assert "FAILED" == (await client.get_clip(failing)).status
    await client.retry_splice(failing)
    assert "FAILED" != (await client.get_clip(failing)).status
    with pytest.raises(RejectedError, match="Only a failed clip"):
        await client.retry_splice(failing)

    await client.cancel_splice(failing)
    assert "DELETED" == (await client.get_clip(failing)).status
    with pytest.raises(RejectedError, match="Clip not found"):
        await client.cancel_splice("AAAAAAAAAAAAAAAAAAAAAA")


@pytest.mark.parametrize(
    ("path", "body"),
    [
        (SPLICE_PATH, {"deviceUuids": "nope", "startTimeMillis": 1, "durationSec": 1}),
        (PRESENCE_PATH, {"cameraUuid": LOBBY_CAMERA}),
        (CANCEL_SPLICE_PATH, {"clipUuid": 5}),
        (RETRY_SPLICE_PATH, {}),
    ],
)
async def test_malformed_bodies_are_500s(sim, path, body):
    """A body that does not deserialise gets Rhombus's 500, as the existing calls do."""
    async with httpx.AsyncClient(base_url=sim.url, headers=AUTH) as http:
        answer = await http.post(path, json=body)
    assert 500 == answer.status_code
    sim.exchanges.clear()  # off-spec on purpose: not validated


async def test_empty_bodies_are_fine_where_nothing_is_asked(sim):
    """The max-duration and camera-location calls take an empty body."""
    async with httpx.AsyncClient(base_url=sim.url, headers=AUTH) as http:
        statuses = [
            (await http.post(path, json={})).status_code
            for path in (MAX_SPLICE_PATH, CAMERA_LOCATIONS_PATH)
        ]
        assert 200 == (await http.post(GET_CLIP_PATH, json={"clipUuid": LOBBY_CAMERA})).status_code
    assert [200, 200] == statuses
