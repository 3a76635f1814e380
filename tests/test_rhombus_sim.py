"""The Rhombus simulator over real HTTP on 127.0.0.1, and its answers checked against the spec."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import itertools
import json
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from bot.clips import CLIP_ID_PATTERN, Clip, ClipStatus
from standins.rhombus import (
    CAMERA_STATES_PATH,
    CLIP_NOT_FOUND_MSG,
    DEFAULT_ORG_UUID,
    DEFAULT_USER_UUID,
    DEMO_CLIPS,
    DEMO_COMPLETES,
    DEMO_FAILS,
    DEMO_PRIVATE,
    DEMO_RECOVERS,
    GET_CLIP_PATH,
    LIST_CLIPS_PATH,
    LOADING_DOCK_CAMERA,
    LOBBY_CAMERA,
    MALFORMED_MSG,
    PARKING_LOT_CAMERA,
    RATE_LIMIT_TEXT,
    RENDER_FAILED,
    SCENARIOS,
    Fault,
    ManualClock,
    RhombusSimulator,
    Step,
    completes,
    fails,
    gets_deleted,
    goes_offline,
    recovers_from_offline,
    serve,
    stays,
)
from tests.contract.openapi import validate_exchange

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from standins.rhombus import Exchange

EPOCH = 1_767_225_600.0  # 2026-01-01T00:00:00Z
EPOCH_MS = 1_767_225_600_000
API_KEY = "test-key"
AUTH = {"x-auth-apikey": API_KEY, "x-auth-scheme": "api-token"}
UNKNOWN_CLIP = "AAAAAAAAAAAAAAAAAAAAAA"
CLIP = "TestClip0000000000000A"

Seen = list[tuple[str, str | None, int | None]]


@pytest.fixture
def clock() -> ManualClock:
    """A clock that moves only when a test moves it."""
    return ManualClock()


@pytest.fixture
async def sim(clock: ManualClock) -> AsyncIterator[RhombusSimulator]:
    """A running simulator; afterwards every exchange it recorded must match the spec."""
    async with RhombusSimulator(api_key=API_KEY, clock=clock, seed=7, epoch=EPOCH) as simulator:
        yield simulator
    for exchange in simulator.exchanges:
        validate_exchange(exchange)


@pytest.fixture
async def offspec_sim(clock: ManualClock) -> AsyncIterator[RhombusSimulator]:
    """A running simulator for requests and answers that leave the spec on purpose."""
    async with RhombusSimulator(api_key=API_KEY, clock=clock, seed=7, epoch=EPOCH) as simulator:
        yield simulator


@pytest.fixture
async def client(sim: RhombusSimulator) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client for `sim` with the right credentials."""
    async with httpx.AsyncClient(base_url=sim.url, headers=AUTH, timeout=5) as http:
        yield http


@pytest.fixture
async def offspec_client(offspec_sim: RhombusSimulator) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client for `offspec_sim` with the right credentials."""
    async with httpx.AsyncClient(base_url=offspec_sim.url, headers=AUTH, timeout=5) as http:
        yield http


async def get_clip(client: httpx.AsyncClient, clip_uuid: str) -> dict[str, Any]:
    """The getClipWithProgress answer for a clip, which must be a 200."""
    response = await client.post(GET_CLIP_PATH, json={"clipUuid": clip_uuid})
    assert 200 == response.status_code
    body: dict[str, Any] = response.json()
    return body


async def list_clips(client: httpx.AsyncClient, **request: object) -> dict[str, Any]:
    """The getClipsWithProgress answer for a request, which must be a 200."""
    response = await client.post(LIST_CLIPS_PATH, json=request)
    assert 200 == response.status_code
    body: dict[str, Any] = response.json()
    return body


async def watch(
    client: httpx.AsyncClient, clock: ManualClock, clip_uuid: str, seconds: float, every: float
) -> Seen:
    """Poll a clip every `every` seconds of the manual clock; its (status, operation, %)."""
    seen: Seen = []
    for _ in range(int(seconds / every) + 1):
        clip = (await get_clip(client, clip_uuid))["clip"]
        seen.append((clip["status"], clip["currentOperation"], clip["percentComplete"]))
        clock.advance(every)
    return seen


def stages(seen: Seen) -> list[str]:
    """The statuses in the order they appeared, without repeats in a row."""
    return [status for i, (status, _, _) in enumerate(seen) if i == 0 or seen[i - 1][0] != status]


# --- getClipWithProgress --------------------------------------------------------------------------


async def test_get_clip_answers_the_clip_with_error_false(
    sim: RhombusSimulator, client: httpx.AsyncClient
) -> None:
    """The clip call answers every field of a fresh clip, and error false."""
    sim.add_clip(CLIP, title="Lobby: delivery", durationSec=90)
    expected = {
        "clip": {
            "uuid": CLIP,
            "title": "Lobby: delivery",
            "description": "",
            "status": "INITIATING",
            "currentOperation": "Initiating",
            "percentComplete": 0,
            "createdAtMs": EPOCH_MS,
            "timestampMs": EPOCH_MS - 600_000,
            "durationSec": 90,
            "lastUpdatedSec": int(EPOCH),
            "deviceUuids": [f"{LOBBY_CAMERA}.v0"],
            "accessSettings": {"visibility": "ORG_WIDE", "allowedUsers": [], "allowedRoles": []},
            "clipLocation": {"region": "us-west-2"},
            "thumbnailLocation": {"region": "us-west-2"},
            "orgUuid": DEFAULT_ORG_UUID,
            "userUuid": DEFAULT_USER_UUID,
            "byteCount": None,
        },
        "error": False,
        "errorMsg": None,
        "warningMsg": None,
    }
    assert expected == await get_clip(client, CLIP)


async def test_the_answer_reads_as_the_domain_clip(
    sim: RhombusSimulator, client: httpx.AsyncClient
) -> None:
    """The bot's own Clip model reads the simulator's answer."""
    sim.add_clip(CLIP, script=stays("COMPLETE", "Complete", 100), device_uuids=[PARKING_LOT_CAMERA])
    clip = Clip.model_validate((await get_clip(client, CLIP))["clip"])
    assert (ClipStatus.COMPLETE, [PARKING_LOT_CAMERA], True) == (
        clip.status,
        clip.camera_ids,
        clip.succeeded,
    )


async def test_unknown_clip_is_an_error_inside_a_200(client: httpx.AsyncClient) -> None:
    """An unknown clip answers HTTP 200 with error true, and no clip."""
    expected = {"error": True, "errorMsg": CLIP_NOT_FOUND_MSG, "warningMsg": None}
    assert expected == await get_clip(client, UNKNOWN_CLIP)


async def test_forgotten_clip_becomes_unknown(
    sim: RhombusSimulator, client: httpx.AsyncClient
) -> None:
    """After forget_clip, the clip answers like one that never existed."""
    sim.add_clip(CLIP)
    sim.forget_clip(CLIP)
    body = await get_clip(client, CLIP)
    assert (True, False, []) == (body["error"], "clip" in body, sim.clip_uuids)


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"",
        b"[]",
        b'"clipUuid"',
        b"{}",
        b'{"clipUuid": 5}',
        b'{"clipUuid": null}',
        b'{"clipUuid": "short"}',
        b'{"clipUuid": ' + b"9" * 5000 + b"}",
        b"[" * 100_000,
        b"\xff\xfe\x00 binary",
    ],
)
async def test_malformed_get_clip_bodies_answer_500(
    offspec_client: httpx.AsyncClient, body: bytes
) -> None:
    """A body that is not a clip request answers 500 with Rhombus's message, never a crash."""
    response = await offspec_client.post(
        GET_CLIP_PATH, content=body, headers={"content-type": "application/json"}
    )
    assert (500, {"msg": MALFORMED_MSG}) == (response.status_code, response.json())


async def test_hostile_requests_get_plain_http_errors(clock: ManualClock) -> None:
    """Too big a body is 413, a GET is 405, an unknown path is 404."""
    async with (
        RhombusSimulator(api_key=API_KEY, clock=clock, max_body_bytes=1024) as simulator,
        httpx.AsyncClient(base_url=simulator.url, headers=AUTH) as http,
    ):
        too_big = await http.post(GET_CLIP_PATH, content=b"{" + b" " * 4096 + b"}")
        wrong_method = await http.get(GET_CLIP_PATH)
        unknown_path = await http.post("/api/event/nope", json={})
    assert [413, 405, 404] == [r.status_code for r in (too_big, wrong_method, unknown_path)]
    assert [413, 405, 404] == [exchange.status for exchange in simulator.exchanges]


# --- Clip scripts ---------------------------------------------------------------------------------


async def test_default_script_goes_through_every_stage(
    sim: RhombusSimulator, client: httpx.AsyncClient, clock: ManualClock
) -> None:
    """A new clip initiates, uploads, renders and completes, a few seconds each."""
    sim.add_clip(CLIP)
    seen = await watch(client, clock, CLIP, seconds=12, every=0.5)
    assert ["INITIATING", "UPLOADING", "RENDERING", "COMPLETE"] == stages(seen)
    assert ("COMPLETE", "Complete", 100) == seen[-1]


async def test_percentage_restarts_with_each_operation_and_never_goes_back(
    sim: RhombusSimulator, client: httpx.AsyncClient, clock: ManualClock
) -> None:
    """Polls show the percentage climb, restart at 0 with a new operation, never fall."""
    sim.add_clip(CLIP)
    seen = await watch(client, clock, CLIP, seconds=12, every=0.5)
    uploading = [percent for status, _, percent in seen if status == "UPLOADING"]
    rendering = [percent for status, _, percent in seen if status == "RENDERING"]
    assert (0, 0) == (uploading[0], rendering[0])
    assert len(set(uploading)) > 3
    for (_, operation, percent), (_, next_operation, next_percent) in itertools.pairwise(seen):
        if operation == next_operation:
            assert percent is not None
            assert next_percent is not None
            assert next_percent >= percent


async def test_complete_clip_carries_resolution_and_size(
    sim: RhombusSimulator, client: httpx.AsyncClient, clock: ManualClock
) -> None:
    """Only a COMPLETE clip has a videoResolution and a byteCount."""
    sim.add_clip(CLIP, durationSec=120)
    before = (await get_clip(client, CLIP))["clip"]
    clock.advance(9)
    after = (await get_clip(client, CLIP))["clip"]
    assert (False, None) == ("videoResolution" in before, before["byteCount"])
    assert ({"width": 1920, "height": 1080}, 30_000_000) == (
        after["videoResolution"],
        after["byteCount"],
    )


async def test_failing_clip_ends_failed_with_a_reason(
    sim: RhombusSimulator, client: httpx.AsyncClient, clock: ManualClock
) -> None:
    """The fails script renders part way, then is FAILED with the reason as operation, for good."""
    sim.add_clip(CLIP, script=fails(2.0))
    seen = await watch(client, clock, CLIP, seconds=8, every=0.5)
    clock.advance(3600)
    later = (await get_clip(client, CLIP))["clip"]
    assert ["INITIATING", "UPLOADING", "RENDERING", "FAILED"] == stages(seen)
    assert ("FAILED", RENDER_FAILED, 60) == seen[-1]
    assert ("FAILED", RENDER_FAILED) == (later["status"], later["currentOperation"])


async def test_offline_clip_stays_offline(
    sim: RhombusSimulator, client: httpx.AsyncClient, clock: ManualClock
) -> None:
    """The goes_offline script stops at OFFLINE and stays there."""
    sim.add_clip(CLIP, script=goes_offline(2.0))
    seen = await watch(client, clock, CLIP, seconds=6, every=0.5)
    clock.advance(10 * 86_400)
    later = (await get_clip(client, CLIP))["clip"]
    assert ["INITIATING", "UPLOADING", "OFFLINE"] == stages(seen)
    assert ("OFFLINE", 40) == (later["status"], later["percentComplete"])


async def test_offline_clip_recovers_and_completes(
    sim: RhombusSimulator, client: httpx.AsyncClient, clock: ManualClock
) -> None:
    """The recovers_from_offline script resumes its upload where it stopped, then completes."""
    sim.add_clip(CLIP, script=recovers_from_offline(2.0, offline_seconds=3.0))
    seen = await watch(client, clock, CLIP, seconds=12, every=0.5)
    resumed = next(i for i, state in enumerate(seen) if state[0] == "OFFLINE") + 1
    while seen[resumed][0] == "OFFLINE":
        resumed += 1
    assert ["INITIATING", "UPLOADING", "OFFLINE", "UPLOADING", "RENDERING", "COMPLETE"] == (
        stages(seen)
    )
    assert ("UPLOADING", 40) == (seen[resumed][0], seen[resumed][2])


async def test_deleted_clips_still_answer(
    sim: RhombusSimulator, client: httpx.AsyncClient, clock: ManualClock
) -> None:
    """A clip deleted by its script or by delete_clip answers with status DELETED."""
    sim.add_clip(CLIP, script=gets_deleted(2.0))
    other = sim.add_clip()
    sim.delete_clip(other)
    seen = await watch(client, clock, CLIP, seconds=8, every=0.5)
    assert ["INITIATING", "UPLOADING", "RENDERING", "DELETED"] == stages(seen)
    assert ("DELETED", "Deleted") == (
        sim.clip_json(other)["status"],
        sim.clip_json(other)["currentOperation"],
    )


async def test_set_clip_overwrites_fields_and_stops_the_script(
    sim: RhombusSimulator, client: httpx.AsyncClient, clock: ManualClock
) -> None:
    """set_clip changes exactly the fields named, at once, and the clip stops moving."""
    sim.add_clip(CLIP)
    clock.advance(4)
    sim.set_clip(CLIP, status="OFFLINE", percentComplete=40, title=None)
    clock.advance(100)
    clip = (await get_clip(client, CLIP))["clip"]
    assert ("OFFLINE", "Uploading video", 40, None, int(EPOCH) + 4) == (
        clip["status"],
        clip["currentOperation"],
        clip["percentComplete"],
        clip["title"],
        clip["lastUpdatedSec"],
    )


async def test_last_updated_moves_only_when_the_state_does(
    sim: RhombusSimulator, clock: ManualClock
) -> None:
    """The lastUpdatedSec field is when the clip last changed, however much later it is read."""
    sim.add_clip(CLIP, script=completes(3.0))
    still = sim.add_clip(script=stays("OFFLINE", "Waiting", 10))
    clock.advance(1000)
    assert (int(EPOCH) + 9, int(EPOCH)) == (
        sim.clip_json(CLIP)["lastUpdatedSec"],
        sim.clip_json(still)["lastUpdatedSec"],
    )


async def test_started_ago_backdates_a_clip(sim: RhombusSimulator) -> None:
    """A clip added with started_ago is as far along, and as old, as if added back then."""
    sim.add_clip(CLIP, started_ago=100)
    clip = sim.clip_json(CLIP)
    assert ("COMPLETE", EPOCH_MS - 100_000) == (clip["status"], clip["createdAtMs"])


def test_add_clip_refuses_what_rhombus_would_not_hold() -> None:
    """Unknown field names, malformed ids, duplicates and bad scripts are refused."""
    simulator = RhombusSimulator(clock=ManualClock())
    simulator.add_clip(CLIP)
    with pytest.raises(TypeError, match="percent_complete"):
        simulator.add_clip(percent_complete=3)
    with pytest.raises(ValueError, match="RUUID"):
        simulator.add_clip("not-a-ruuid")
    with pytest.raises(ValueError, match="already exists"):
        simulator.add_clip(CLIP)
    with pytest.raises(ValueError, match="starts with a step at 0"):
        simulator.add_clip(script=[Step(1, "UPLOADING", "Uploading video", 0)])
    with pytest.raises(ValueError, match="only moves forward"):
        simulator.add_clip(script=[Step(0, "UPLOADING", "Uploading video", 50, 10)])
    with pytest.raises(KeyError, match=UNKNOWN_CLIP):
        simulator.set_clip(UNKNOWN_CLIP, status="OFFLINE")


# --- getClipsWithProgress -------------------------------------------------------------------------


async def test_paging_450_clips_in_pages_of_200(
    sim: RhombusSimulator, client: httpx.AsyncClient
) -> None:
    """450 clips come in pages of 200, 200 and 50, newest first, none twice, none missing."""
    added = [sim.add_clip(started_ago=age, script=stays("COMPLETE")) for age in range(450)]
    pages = [await list_clips(client, pageSize=200)]
    while pages[-1]["pageToken"] is not None:
        pages.append(await list_clips(client, pageSize=200, pageToken=pages[-1]["pageToken"]))
    listed = [clip["uuid"] for page in pages for clip in page["savedClips"]]
    assert [200, 200, 50] == [len(page["savedClips"]) for page in pages]
    assert added == listed


async def test_paging_is_stable_when_clips_arrive_between_pages(
    sim: RhombusSimulator, client: httpx.AsyncClient, clock: ManualClock
) -> None:
    """A clip added after the first page does not shift or repeat the later pages."""
    older = [sim.add_clip(started_ago=10 + age) for age in range(5)]
    first = await list_clips(client, pageSize=3)
    clock.advance(1)
    sim.add_clip()
    second = await list_clips(client, pageSize=3, pageToken=first["pageToken"])
    assert older == [clip["uuid"] for clip in first["savedClips"] + second["savedClips"]]
    assert second["pageToken"] is None


async def test_listing_filters_by_title_camera_and_privacy(
    sim: RhombusSimulator, client: httpx.AsyncClient
) -> None:
    """The title search ignores case; device and privacy filters narrow the list."""
    dock = sim.add_clip(title="Loading DOCK forklift", device_uuids=[LOADING_DOCK_CAMERA])
    lobby = sim.add_clip(title="Lobby visitor", device_uuids=[LOBBY_CAMERA])
    private = sim.add_clip(title="HR", visibility="PRIVATE", device_uuids=[LOBBY_CAMERA])

    async def uuids(**filters: object) -> list[str]:
        page = await list_clips(client, pageSize=10, **filters)
        return [clip["uuid"] for clip in page["savedClips"]]

    assert [dock] == await uuids(searchFilter="dock")
    assert [private, lobby] == await uuids(deviceUuidFilters=[LOBBY_CAMERA])
    assert [private] == await uuids(filterByPrivate=True)


async def test_empty_org_lists_nothing(client: httpx.AsyncClient) -> None:
    """With no clips, the one page is empty and has no next token."""
    assert {"savedClips": [], "pageToken": None} == {
        key: value
        for key, value in (await list_clips(client, pageSize=200)).items()
        if key in {"savedClips", "pageToken"}
    }


@pytest.mark.parametrize(
    ("payload", "status"),
    [
        ({"pageSize": 0}, 400),
        ({"pageSize": 201}, 400),
        ({}, 400),
        ({"pageSize": 10, "pageToken": "!!not a token!!"}, 400),
        ({"pageSize": "ten"}, 500),
        ({"pageSize": 10, "searchFilter": 3}, 500),
    ],
)
async def test_bad_listing_requests_are_refused(
    offspec_client: httpx.AsyncClient, payload: dict[str, object], status: int
) -> None:
    """An out-of-range page size or a foreign token is 400; a wrong type is 500."""
    response = await offspec_client.post(LIST_CLIPS_PATH, json=payload)
    assert status == response.status_code


# --- getMinimalCameraStateList --------------------------------------------------------------------


async def test_camera_list_names_cameras_without_facets(
    sim: RhombusSimulator, client: httpx.AsyncClient
) -> None:
    """The default cameras and added ones answer with bare uuids and their names."""
    sim.add_camera("NewCamera0000000000000", None)
    response = await client.post(CAMERA_STATES_PATH, json={})
    body = response.json()
    expected = [
        (LOBBY_CAMERA, "Lobby"),
        (LOADING_DOCK_CAMERA, "Loading Dock"),
        (PARKING_LOT_CAMERA, "Parking Lot"),
        ("NewCamera0000000000000", None),
    ]
    assert (expected, False) == (
        [(camera["uuid"], camera["name"]) for camera in body["cameraStates"]],
        body["error"],
    )


# --- Authentication -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"x-auth-apikey": API_KEY},
        {"x-auth-scheme": "api-token"},
        {"x-auth-apikey": API_KEY, "x-auth-scheme": "bearer"},
    ],
)
async def test_missing_credentials_answer_401(
    offspec_sim: RhombusSimulator, headers: dict[str, str]
) -> None:
    """Without both the key and a known scheme, every path answers 401; the kit agrees."""
    async with httpx.AsyncClient(base_url=offspec_sim.url, headers=headers) as http:
        response = await http.post(GET_CLIP_PATH, json={"clipUuid": UNKNOWN_CLIP})
    assert (401, {"authenticationFailed": True}) == (response.status_code, response.json())
    with pytest.raises(AssertionError, match="request"):
        validate_exchange(offspec_sim.exchanges[-1])


async def test_wrong_key_answers_403(sim: RhombusSimulator) -> None:
    """A key the org did not issue answers 403 Access Denied on every path."""
    headers = {"x-auth-apikey": "stolen", "x-auth-scheme": "api-token"}
    async with httpx.AsyncClient(base_url=sim.url, headers=headers) as http:
        answers = [
            await http.post(GET_CLIP_PATH, json={"clipUuid": UNKNOWN_CLIP}),
            await http.post(LIST_CLIPS_PATH, json={"pageSize": 1}),
            await http.post(CAMERA_STATES_PATH, json={}),
        ]
    expected = {"status": 403, "error": "Forbidden", "msg": "Access Denied"}
    assert [(403, expected)] * 3 == [(r.status_code, r.json()) for r in answers]


async def test_partner_scheme_must_name_the_org(clock: ManualClock) -> None:
    """With partner schemes the x-auth-org header must be the org; plain keys need none."""
    org = "ClientOrg000000000000A"
    partner = {"x-auth-apikey": API_KEY, "x-auth-scheme": "partner-api-token"}
    async with (
        RhombusSimulator(api_key=API_KEY, org_uuid=org, clock=clock) as simulator,
        httpx.AsyncClient(base_url=simulator.url) as http,
    ):
        statuses = [
            (await http.post(CAMERA_STATES_PATH, json={}, headers=headers)).status_code
            for headers in (
                partner,
                {**partner, "x-auth-org": "OtherOrg00000000000000"},
                {**partner, "x-auth-org": org},
                {**partner, "x-auth-scheme": "partner-api", "x-auth-org": org},
                AUTH,
            )
        ]
    assert [403, 403, 200, 200, 200] == statuses
    for exchange in simulator.exchanges:
        validate_exchange(exchange)


# --- Faults ---------------------------------------------------------------------------------------


async def test_rate_limit_fault_answers_429_with_retry_after(
    sim: RhombusSimulator, client: httpx.AsyncClient
) -> None:
    """An injected rate limit is 429, Retry-After and Rhombus's text, as often as asked."""
    sim.add_clip(CLIP)
    sim.inject(Fault("rate_limit", retry_after=7, times=2))
    answers = [await client.post(GET_CLIP_PATH, json={"clipUuid": CLIP}) for _ in range(3)]
    assert [(429, "7", RATE_LIMIT_TEXT)] * 2 + [(200, None, None)] == [
        (
            r.status_code,
            r.headers.get("retry-after"),
            r.text if r.status_code == 429 else None,
        )
        for r in answers
    ]


@pytest.mark.parametrize(
    ("status", "content_type"),
    [(500, "application/json"), (502, "text/html"), (503, "text/html")],
)
async def test_server_error_faults(
    sim: RhombusSimulator, client: httpx.AsyncClient, status: int, content_type: str
) -> None:
    """A 500 comes as JSON, a 502 or 503 as the load balancer's HTML page."""
    sim.inject(Fault("server_error", status=status))
    response = await client.post(CAMERA_STATES_PATH, json={})
    assert (status, content_type) == (response.status_code, response.headers["content-type"])


async def test_slow_fault_makes_a_short_timeout_expire(
    sim: RhombusSimulator, client: httpx.AsyncClient
) -> None:
    """A slow answer outlasts a short client timeout; the next request is answered normally."""
    sim.inject(Fault("slow", delay=5.0))
    with pytest.raises(httpx.ReadTimeout):
        await client.post(CAMERA_STATES_PATH, json={}, timeout=0.05)
    response = await client.post(CAMERA_STATES_PATH, json={})
    assert (200, [("slow", None), (None, 200)]) == (
        response.status_code,
        [(exchange.fault, exchange.status) for exchange in sim.exchanges],
    )


async def test_slow_fault_then_answers_normally(
    sim: RhombusSimulator, client: httpx.AsyncClient
) -> None:
    """A short delay is followed by the normal answer."""
    sim.inject(Fault("slow", delay=0.01))
    response = await client.post(CAMERA_STATES_PATH, json={})
    assert (200, 3) == (response.status_code, len(response.json()["cameraStates"]))


async def test_garbage_fault_is_html_in_a_200(
    offspec_sim: RhombusSimulator, offspec_client: httpx.AsyncClient
) -> None:
    """A garbage answer is a 200 that is not JSON; the kit rejects it."""
    offspec_sim.inject(Fault("garbage"))
    response = await offspec_client.post(CAMERA_STATES_PATH, json={})
    assert (200, "text/html", "<html>oops") == (
        response.status_code,
        response.headers["content-type"],
        response.text,
    )
    with pytest.raises(AssertionError, match="text/html"):
        validate_exchange(offspec_sim.exchanges[-1])


@pytest.mark.parametrize(
    ("path", "payload"),
    [
        (GET_CLIP_PATH, {"clipUuid": UNKNOWN_CLIP}),
        (LIST_CLIPS_PATH, {"pageSize": 10}),
        (CAMERA_STATES_PATH, {}),
    ],
)
async def test_wrong_shape_fault_breaks_the_spec(
    offspec_sim: RhombusSimulator,
    offspec_client: httpx.AsyncClient,
    path: str,
    payload: dict[str, object],
) -> None:
    """A wrong-shape answer is JSON in a 200 that the kit rejects, naming the path."""
    offspec_sim.inject(Fault("wrong_shape", path=path))
    response = await offspec_client.post(path, json=payload)
    assert 200 == response.status_code
    with pytest.raises(AssertionError, match=path):
        validate_exchange(offspec_sim.exchanges[-1])


async def test_error_body_fault_is_an_error_inside_a_200(
    sim: RhombusSimulator, client: httpx.AsyncClient
) -> None:
    """An error body is a 200 with error true and the message, within the spec."""
    sim.add_clip(CLIP)
    sim.inject(Fault("error_body", error_msg="Service temporarily unavailable"))
    response = await client.post(GET_CLIP_PATH, json={"clipUuid": CLIP})
    expected = {"error": True, "errorMsg": "Service temporarily unavailable"}
    assert (200, expected) == (response.status_code, response.json())


async def test_disconnect_fault_hangs_up(sim: RhombusSimulator, client: httpx.AsyncClient) -> None:
    """A disconnect closes the connection without an answer; the next request is answered."""
    sim.inject(Fault("disconnect"))
    with pytest.raises(httpx.RemoteProtocolError):
        await client.post(CAMERA_STATES_PATH, json={})
    response = await client.post(CAMERA_STATES_PATH, json={})
    assert (200, [("disconnect", None), (None, 200)]) == (
        response.status_code,
        [(exchange.fault, exchange.status) for exchange in sim.exchanges],
    )


async def test_faults_match_their_path_until_cleared(
    sim: RhombusSimulator, client: httpx.AsyncClient
) -> None:
    """A fault spoils only its path; times=-1 lasts until the faults are cleared."""
    fault = Fault("server_error", path=LIST_CLIPS_PATH, times=-1)
    sim.inject(fault)
    statuses = [
        (await client.post(path, json={"pageSize": 1})).status_code
        for path in (CAMERA_STATES_PATH, LIST_CLIPS_PATH, LIST_CLIPS_PATH)
    ]
    armed = sim.faults
    sim.clear_faults()
    after = (await client.post(LIST_CLIPS_PATH, json={"pageSize": 1})).status_code
    assert ([200, 500, 500], [fault], 200) == (statuses, armed, after)


async def test_fault_probability_follows_the_seed(clock: ManualClock) -> None:
    """Random faults fire about as often as asked, the same way for the same seed."""

    async def statuses(seed: int) -> list[int]:
        simulator = RhombusSimulator(api_key=API_KEY, clock=clock, seed=seed)
        simulator.inject(Fault("rate_limit", times=-1, probability=0.5))
        async with simulator, httpx.AsyncClient(base_url=simulator.url, headers=AUTH) as http:
            return [(await http.post(CAMERA_STATES_PATH, json={})).status_code for _ in range(20)]

    first = await statuses(3)
    assert first == await statuses(3)
    assert {200, 429} == set(first)


def test_impossible_faults_are_refused() -> None:
    """A fault with settings Rhombus could not produce is refused when made."""
    for settings in ({"times": 0}, {"retry_after": 0}, {"status": 404}, {"probability": 2.0}):
        with pytest.raises(ValueError, match=r"times|retry_after|status|probability"):
            Fault("server_error", **settings)


# --- The organisation's token bucket --------------------------------------------------------------


async def test_token_bucket_throttles_the_org_across_paths(clock: ManualClock) -> None:
    """Past the burst every path answers 429 with Retry-After until tokens come back."""
    async with (
        RhombusSimulator(
            api_key=API_KEY, clock=clock, rate_limit_per_second=1, rate_limit_burst=3
        ) as simulator,
        httpx.AsyncClient(base_url=simulator.url, headers=AUTH) as http,
    ):
        paths = [CAMERA_STATES_PATH, LIST_CLIPS_PATH, CAMERA_STATES_PATH, LIST_CLIPS_PATH]
        burst = [await http.post(path, json={"pageSize": 5}) for path in paths]
        clock.advance(1)
        refilled = await http.post(CAMERA_STATES_PATH, json={})
        again = await http.post(CAMERA_STATES_PATH, json={})
    assert [200, 200, 200, 429, 200, 429] == [r.status_code for r in [*burst, refilled, again]]
    assert ("1", RATE_LIMIT_TEXT) == (burst[-1].headers["retry-after"], burst[-1].text)
    for exchange in simulator.exchanges:
        validate_exchange(exchange)


# --- Recording ------------------------------------------------------------------------------------


async def test_exchanges_record_requests_and_answers(
    sim: RhombusSimulator, client: httpx.AsyncClient, clock: ManualClock
) -> None:
    """Each exchange keeps the request and the answer; calls counts requests per path."""
    sim.add_clip(CLIP)
    clock.advance(2)
    await client.post(GET_CLIP_PATH, json={"clipUuid": CLIP})
    await client.post(CAMERA_STATES_PATH, json={})
    exchange = sim.exchanges[0]
    assert (
        "POST",
        GET_CLIP_PATH,
        API_KEY,
        {"clipUuid": CLIP},
        2.0,
        200,
        "application/json",
        "INITIATING",
    ) == (
        exchange.method,
        exchange.path,
        exchange.headers["x-auth-apikey"],
        exchange.json,
        exchange.at,
        exchange.status,
        exchange.response_headers["content-type"],
        exchange.response_json["clip"]["status"],
    )
    assert json.loads(exchange.response_body) == exchange.response_json
    assert {GET_CLIP_PATH: 1, CAMERA_STATES_PATH: 1} == dict(sim.calls)


async def test_exchanges_keep_only_the_latest(clock: ManualClock) -> None:
    """Past max_exchanges the oldest exchanges are dropped; calls still counts them all."""
    async with (
        RhombusSimulator(api_key=API_KEY, clock=clock, max_exchanges=3) as simulator,
        httpx.AsyncClient(base_url=simulator.url, headers=AUTH) as http,
    ):
        for size in range(1, 6):
            await http.post(LIST_CLIPS_PATH, json={"pageSize": size})
    assert ([3, 4, 5], 5) == (
        [exchange.json["pageSize"] for exchange in simulator.exchanges],
        simulator.calls[LIST_CLIPS_PATH],
    )


async def test_on_request_sees_every_request_as_it_arrives(clock: ManualClock) -> None:
    """on_request gets each request, even those max_exchanges no longer keeps."""
    seen: list[tuple[str, float]] = []
    async with (
        RhombusSimulator(api_key=API_KEY, clock=clock, max_exchanges=1) as simulator,
        httpx.AsyncClient(base_url=simulator.url, headers=AUTH) as http,
    ):
        simulator.on_request = lambda exchange: seen.append((exchange.path, exchange.at))
        await http.post(LIST_CLIPS_PATH, json={"pageSize": 1})
        clock.advance(1)
        await http.post(CAMERA_STATES_PATH, json={})
    assert [(LIST_CLIPS_PATH, 0.0), (CAMERA_STATES_PATH, 1.0)] == seen


async def test_pages_of_a_large_organisation_list_every_clip_once_newest_first(
    clock: ManualClock,
) -> None:
    """Paging through 450 clips gives each once, newest first, the last page short."""
    simulator = RhombusSimulator(api_key=API_KEY, clock=clock)
    for index in range(450):
        simulator.add_clip(title=f"Clip {index}", script=completes(10), started_ago=index % 7)
    async with simulator, httpx.AsyncClient(base_url=simulator.url, headers=AUTH) as http:
        pages: list[list[dict[str, Any]]] = []
        body: dict[str, Any] = {"pageSize": 200}
        while True:
            answer = (await http.post(LIST_CLIPS_PATH, json=body)).json()
            pages.append(answer["savedClips"])
            if answer["pageToken"] is None:
                break
            body = {"pageSize": 200, "pageToken": answer["pageToken"]}
    listed = [clip["uuid"] for page in pages for clip in page]
    created = [clip["createdAtMs"] for page in pages for clip in page]
    assert ([200, 200, 50], sorted(simulator.clip_uuids)) == (
        [len(page) for page in pages],
        sorted(listed),
    )
    assert sorted(created, reverse=True) == created


# --- Scenarios ------------------------------------------------------------------------------------


def test_demo_scenario_holds_known_clips_that_end_differently() -> None:
    """The demo clips have known ids and end complete, failed, complete, deleted, complete."""
    clock = ManualClock()
    simulator = RhombusSimulator.from_scenario("demo", clock=clock, step_seconds=1.0)
    clock.advance(60)
    finals = [simulator.clip_json(uuid)["status"] for uuid in DEMO_CLIPS]
    assert list(DEMO_CLIPS) == simulator.clip_uuids
    assert all(CLIP_ID_PATTERN.fullmatch(uuid) for uuid in DEMO_CLIPS)
    assert ["COMPLETE", "FAILED", "COMPLETE", "DELETED", "COMPLETE"] == finals
    assert "PRIVATE" == simulator.clip_json(DEMO_PRIVATE)["accessSettings"]["visibility"]


def test_demo_recovering_clip_goes_offline_first() -> None:
    """The demo's recovering clip is OFFLINE for a while before it completes."""
    clock = ManualClock()
    simulator = RhombusSimulator.from_scenario("demo", clock=clock, step_seconds=1.0)
    clock.advance(3)
    assert "OFFLINE" == simulator.clip_json(DEMO_RECOVERS)["status"]


def test_empty_scenario_has_cameras_but_no_clips() -> None:
    """The empty scenario holds no clips."""
    assert [] == RhombusSimulator.from_scenario("empty").clip_uuids


def test_bench_scenario_spreads_many_clips_over_every_stage() -> None:
    """The bench scenario holds n_clips clips, at different stages."""
    simulator = RhombusSimulator.from_scenario("bench", clock=ManualClock(), n_clips=60, seed=1)
    statuses = {simulator.clip_json(uuid)["status"] for uuid in simulator.clip_uuids}
    assert 60 == len(simulator.clip_uuids)
    assert len(statuses) >= 3


def test_flaky_scenario_arms_random_faults() -> None:
    """The flaky scenario holds the demo clips behind lasting, improbable faults."""
    simulator = RhombusSimulator.from_scenario("flaky", fault_probability=0.1)
    assert list(DEMO_CLIPS) == simulator.clip_uuids
    assert {"rate_limit", "server_error", "slow"} == {fault.kind for fault in simulator.faults}
    assert all(fault.times == -1 and fault.probability <= 0.1 for fault in simulator.faults)


def test_unknown_scenario_is_refused() -> None:
    """An unknown scenario name is refused with the names there are."""
    with pytest.raises(ValueError, match=", ".join(SCENARIOS)):
        RhombusSimulator.from_scenario("nope")


class _Announcements(io.StringIO):
    """A stream that says when something was written to it."""

    def __init__(self) -> None:
        super().__init__()
        self.written = asyncio.Event()

    def write(self, text: str) -> int:
        count = super().write(text)
        self.written.set()
        return count


async def test_serve_announces_itself_and_answers_until_cancelled() -> None:
    """Running it alone prints one line with the URL, key and clips, and answers until cancelled."""
    out = _Announcements()
    server = asyncio.create_task(serve(port=0, scenario="demo", api_key="cli-key", out=out))
    await asyncio.wait_for(out.written.wait(), timeout=5)
    line = out.getvalue()
    url = next(word for word in line.split() if word.startswith("http://127.0.0.1:"))
    headers = {"x-auth-apikey": "cli-key", "x-auth-scheme": "api-token"}
    async with httpx.AsyncClient(base_url=url, headers=headers) as http:
        clip = (await http.post(GET_CLIP_PATH, json={"clipUuid": DEMO_COMPLETES})).json()["clip"]
    server.cancel()
    with pytest.raises(asyncio.CancelledError):
        await server
    assert (1, True, True) == (
        line.count("\n"),
        "cli-key" in line and all(uuid in line for uuid in DEMO_CLIPS),
        clip["uuid"] == DEMO_COMPLETES,
    )


# --- The contract ---------------------------------------------------------------------------------


async def test_a_whole_demo_run_matches_the_spec(clock: ManualClock) -> None:
    """Every exchange of a demo run, through every status, fault and error, matches the spec."""
    simulator = RhombusSimulator.from_scenario(
        "demo", api_key=API_KEY, clock=clock, seed=5, step_seconds=2.0
    )
    seen: set[str] = set()
    async with simulator, httpx.AsyncClient(base_url=simulator.url, headers=AUTH) as http:
        for second in range(24):
            for uuid in DEMO_CLIPS:
                answer = await http.post(GET_CLIP_PATH, json={"clipUuid": uuid})
                seen.add(answer.json()["clip"]["status"])
            if second % 6 == 0:
                await http.post(LIST_CLIPS_PATH, json={"pageSize": 2, "searchFilter": "lo"})
            clock.advance(1)
        await http.post(GET_CLIP_PATH, json={"clipUuid": UNKNOWN_CLIP})
        await http.post(CAMERA_STATES_PATH, json={"includeMummified": False})
        for fault in (Fault("error_body"), Fault("rate_limit"), Fault("server_error")):
            simulator.inject(fault)
            await http.post(GET_CLIP_PATH, json={"clipUuid": DEMO_FAILS})
    expected = {"INITIATING", "UPLOADING", "RENDERING", "COMPLETE", "FAILED", "OFFLINE", "DELETED"}
    assert expected == seen
    for exchange in simulator.exchanges:
        validate_exchange(exchange)


async def good_exchange(client: httpx.AsyncClient, sim: RhombusSimulator) -> Exchange:
    """A recorded exchange that matches the spec, to spoil."""
    sim.add_clip(CLIP)
    await client.post(GET_CLIP_PATH, json={"clipUuid": CLIP})
    return sim.exchanges[-1]


async def test_the_kit_rejects_a_wrong_clip_field(
    sim: RhombusSimulator, client: httpx.AsyncClient
) -> None:
    """A clip whose percentComplete is text fails validation, naming the path and the field."""
    exchange = await good_exchange(client, sim)
    clip = {**exchange.response_json["clip"], "percentComplete": "forty"}
    wrong = dataclasses.replace(exchange, response_body=json.dumps({"clip": clip}).encode())
    with pytest.raises(AssertionError, match=r"getClipWithProgress[\s\S]*percentComplete"):
        validate_exchange(wrong)


async def test_the_kit_rejects_an_unknown_status(
    sim: RhombusSimulator, client: httpx.AsyncClient
) -> None:
    """A status outside ClipStatusEnum fails validation."""
    exchange = await good_exchange(client, sim)
    clip = {**exchange.response_json["clip"], "status": "PAUSED"}
    wrong = dataclasses.replace(exchange, response_body=json.dumps({"clip": clip}).encode())
    with pytest.raises(AssertionError, match="PAUSED"):
        validate_exchange(wrong)


async def test_the_kit_rejects_a_request_without_a_clip_uuid(
    sim: RhombusSimulator, client: httpx.AsyncClient
) -> None:
    """A request body without the required clipUuid fails validation, whatever the answer."""
    exchange = await good_exchange(client, sim)
    wrong = dataclasses.replace(exchange, body=b"{}")
    with pytest.raises(AssertionError, match="clipUuid"):
        validate_exchange(wrong)


async def test_the_kit_accepts_every_documented_scheme(
    sim: RhombusSimulator, client: httpx.AsyncClient
) -> None:
    """Each of the four documented x-auth-scheme values passes the request check."""
    exchange = await good_exchange(client, sim)
    for scheme in ("api-token", "api", "partner-api-token", "partner-api"):
        validate_exchange(
            dataclasses.replace(exchange, headers={**exchange.headers, "x-auth-scheme": scheme})
        )
