"""The Rhombus client against the Rhombus simulator on 127.0.0.1: answers, errors, limits, spec."""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import TYPE_CHECKING, TypeVar

import httpx
import pytest

from bot.budget import Priority
from bot.clips import AccessSettings, Clip, ClipStatus, Location, VideoResolution, Visibility
from bot.rhombus import (
    AuthenticationError,
    BadResponseError,
    RateLimitedError,
    RejectedError,
    RhombusClient,
    RhombusError,
    UnavailableError,
)
from standins.rhombus import (
    CAMERA_STATES_PATH,
    CLIP_NOT_FOUND_MSG,
    DEFAULT_CAMERAS,
    DEFAULT_ORG_UUID,
    GET_CLIP_PATH,
    LIST_CLIPS_PATH,
    LOADING_DOCK_CAMERA,
    LOBBY_CAMERA,
    PARKING_LOT_CAMERA,
    Fault,
    ManualClock,
    RhombusSimulator,
    media_sha256,
    stays,
)
from tests.contract.openapi import validate_exchange
from tests.helpers import RHOMBUS_KEY, wait_until

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

CLIP = "ClientTestClip0000000A"
UNKNOWN_CLIP = "AAAAAAAAAAAAAAAAAAAAAA"
WRONG_KEY = "wrong-rhombus-api-key-9876543210"
PARTNER_ORG = "PartnerClientOrg00000A"
EPOCH_MS = 1_764_000_000_000  # the conftest simulator's epoch, in ms

E = TypeVar("E", bound=RhombusError)

# One call per path, each through a different public method.
CALLS: dict[str, Callable[[RhombusClient], Awaitable[object]]] = {
    GET_CLIP_PATH: lambda client: client.get_clip(CLIP),
    LIST_CLIPS_PATH: lambda client: client.get_clips_page(),
    CAMERA_STATES_PATH: lambda client: client.camera_names(),
}


@pytest.fixture
async def client(rhombus: RhombusSimulator) -> AsyncIterator[RhombusClient]:
    """The real client, pointed at the simulator with the right key."""
    async with RhombusClient(api_key=RHOMBUS_KEY, base_url=rhombus.url, timeout=2.0) as real:
        yield real


def _chain(error: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


async def failure(kind: type[E], call: Awaitable[object]) -> E:
    """The error `call` raises, which must be a `kind` and must not reveal an API key."""
    with pytest.raises(kind) as caught:
        await call
    for error in _chain(caught.value):
        for key in (RHOMBUS_KEY, WRONG_KEY):
            assert key not in str(error)
            assert key not in repr(error)
    return caught.value


def closed_port_url() -> str:
    """A URL on 127.0.0.1 where nothing listens."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


# --- One clip -------------------------------------------------------------------------------------


async def test_get_clip_reads_every_field_typed(
    rhombus: RhombusSimulator, client: RhombusClient
) -> None:
    """A complete clip comes back as a Clip with every field typed."""
    rhombus.add_clip(
        CLIP,
        title="Lobby: delivery",
        description="Courier at the desk",
        script=stays("COMPLETE", "Complete", 100),
        device_uuids=[LOBBY_CAMERA, f"{LOADING_DOCK_CAMERA}.a0"],
        durationSec=90,
    )
    expected = Clip(
        uuid=CLIP,
        title="Lobby: delivery",
        description="Courier at the desk",
        status=ClipStatus.COMPLETE,
        percent_complete=100,
        current_operation="Complete",
        created_at_ms=EPOCH_MS,
        timestamp_ms=EPOCH_MS - 600_000,
        duration_sec=90,
        last_updated_sec=EPOCH_MS // 1000,
        device_uuids=[f"{LOBBY_CAMERA}.v0", f"{LOADING_DOCK_CAMERA}.a0"],
        video_resolution=VideoResolution(width=1920, height=1080),
        byte_count=90 * 250_000,
        access_settings=AccessSettings(visibility=Visibility.ORG_WIDE),
        clip_location=Location(region="us-west-2"),
        thumbnail_location=Location(region="us-west-2"),
        sha256_hex=media_sha256(CLIP, 90 * 250_000),
        org_uuid=DEFAULT_ORG_UUID,
    )
    clip = await client.get_clip(CLIP)
    assert expected == clip
    assert (ClipStatus.COMPLETE, Visibility.ORG_WIDE, True) == (
        clip.status,
        clip.visibility,
        clip.succeeded,
    )
    assert [LOBBY_CAMERA, LOADING_DOCK_CAMERA] == clip.camera_ids


async def test_get_clip_follows_the_clip_as_it_progresses(
    rhombus: RhombusSimulator, client: RhombusClient, clock: ManualClock
) -> None:
    """Each call reads the clip as it is now: initiating, then rendering, then complete."""
    rhombus.add_clip(CLIP)
    seen = []
    for seconds in (0, 7, 10):
        clock.advance(seconds)
        clip = await client.get_clip(CLIP)
        seen.append((clip.status, clip.percent))
    assert [
        (ClipStatus.INITIATING, 0),
        (ClipStatus.RENDERING, 33),
        (ClipStatus.COMPLETE, 100),
    ] == seen


async def test_unknown_clip_is_rejected_with_rhombus_message(client: RhombusClient) -> None:
    """An unknown clip (error true inside a 200) raises RejectedError with Rhombus's errorMsg."""
    error = await failure(RejectedError, client.get_clip(UNKNOWN_CLIP))
    assert (CLIP_NOT_FOUND_MSG, False) == (str(error), error.retryable)


async def test_fields_that_turn_null_or_absent_read_as_none(
    rhombus: RhombusSimulator, client: RhombusClient
) -> None:
    """A clip whose every field turns null (or, for objects and enums, absent) is all None."""
    rhombus.add_clip(CLIP, script=stays("COMPLETE", "Complete", 100))
    before = await client.get_clip(CLIP)
    nulls: dict[str, object] = dict.fromkeys(
        (
            "uuid",
            "title",
            "description",
            "status",
            "percentComplete",
            "currentOperation",
            "createdAtMs",
            "timestampMs",
            "durationSec",
            "lastUpdatedSec",
            "deviceUuids",
            "videoResolution",
            "byteCount",
            "accessSettings",
            "clipLocation",
            "thumbnailLocation",
            "sha256Hex",
            "orgUuid",
        )
    )
    rhombus.set_clip(CLIP, **nulls)
    after = await client.get_clip(CLIP)
    answer = rhombus.exchanges[-1].response_json["clip"]
    assert ClipStatus.COMPLETE == before.status
    assert (False, False, None) == ("status" in answer, "accessSettings" in answer, answer["title"])
    assert Clip() == after
    assert (ClipStatus.UNKNOWN, None, [], Visibility.UNKNOWN, False) == (
        after.status,
        after.percent,
        after.camera_ids,
        after.visibility,
        after.is_final,
    )


async def test_fields_of_the_wrong_type_read_as_none(
    rhombus: RhombusSimulator, client: RhombusClient
) -> None:
    """A field of the wrong type is None and the rest of the clip still reads."""
    rhombus.add_clip(CLIP, title="Kept", script=stays("RENDERING", "Processing video", 40))
    rhombus.set_clip(
        CLIP,
        percentComplete="forty",
        deviceUuids="not a list",
        videoResolution="big",
        accessSettings={"visibility": "SECRET"},
    )
    clip = await client.get_clip(CLIP)
    assert ("Kept", ClipStatus.RENDERING, None, None, None, Visibility.UNKNOWN) == (
        clip.title,
        clip.status,
        clip.percent_complete,
        clip.device_uuids,
        clip.video_resolution,
        clip.visibility,
    )


async def test_status_rhombus_has_not_documented_reads_as_unknown(
    rhombus: RhombusSimulator, client: RhombusClient
) -> None:
    """A status outside ClipStatusEnum reads as UNKNOWN, the rest of the clip intact."""
    rhombus.add_clip(CLIP, title="Still here", script=stays("RENDERING", "Processing video", 40))
    read = []
    for status in ("PAUSED", "", 7, "complete"):
        rhombus.set_clip(CLIP, status=status)
        clip = await client.get_clip(CLIP)
        read.append((clip.status, clip.title, clip.percent_complete))
    assert [
        (ClipStatus.UNKNOWN, "Still here", 40),
        (ClipStatus.UNKNOWN, "Still here", 40),
        (ClipStatus.UNKNOWN, "Still here", 40),
        (ClipStatus.COMPLETE, "Still here", 40),
    ] == read


# --- Pages of clips -------------------------------------------------------------------------------


async def test_pages_of_450_clips_take_three_calls(
    rhombus: RhombusSimulator, client: RhombusClient
) -> None:
    """get_clips_page hands out 200, 200 and 50 clips, newest first, then no token."""
    for index in range(450):
        rhombus.add_clip(title=f"Clip {index:03d}")
    first = await client.get_clips_page(page_size=200)
    second = await client.get_clips_page(page_size=200, page_token=first.next_page_token)
    third = await client.get_clips_page(page_size=200, page_token=second.next_page_token)
    pages = (first, second, third)
    uuids = [clip.uuid for page in pages for clip in page.clips]
    assert [200, 200, 50] == [len(page.clips) for page in pages]
    assert (True, True, None) == (
        first.next_page_token is not None,
        second.next_page_token not in {None, first.next_page_token},
        third.next_page_token,
    )
    assert list(reversed(rhombus.clip_uuids)) == uuids
    assert 3 == rhombus.calls[LIST_CLIPS_PATH]


async def test_an_empty_organisation_is_one_empty_page(client: RhombusClient) -> None:
    """With no clips, the first page is empty and says there is no next one."""
    page = await client.get_clips_page()
    assert ([], None) == (page.clips, page.next_page_token)


async def test_page_size_is_kept_within_rhombus_limits(
    rhombus: RhombusSimulator, client: RhombusClient
) -> None:
    """A page size outside 1-200 is clamped rather than sent for Rhombus to refuse."""
    for _ in range(250):
        rhombus.add_clip()
    sent = []
    for asked in (1000, 0, -5, 50):
        page = await client.get_clips_page(page_size=asked)
        sent.append((rhombus.exchanges[-1].json["pageSize"], len(page.clips)))
    assert [(200, 200), (1, 1), (1, 1), (50, 50)] == sent


# --- Camera names ---------------------------------------------------------------------------------


async def test_camera_names_map_the_clip_cameras(
    rhombus: RhombusSimulator, client: RhombusClient
) -> None:
    """Camera names are keyed by bare uuid, so a clip's faceted deviceUuids find them."""
    rhombus.add_camera("UnnamedCamera000000000", None)
    rhombus.add_clip(CLIP, device_uuids=[f"{PARKING_LOT_CAMERA}.v0", f"{LOBBY_CAMERA}.a0"])
    names = await client.camera_names()
    clip = await client.get_clip(CLIP)
    assert dict(DEFAULT_CAMERAS) == names
    assert ["Parking Lot", "Lobby"] == [names[camera] for camera in clip.camera_ids]


async def test_camera_names_strip_facets() -> None:
    """A camera uuid that carries a facet is keyed without it.

    The simulator, like Rhombus, lists bare camera uuids and refuses faceted ones, so this one
    answer comes from an in-process transport.
    """
    answer = {
        "cameraStates": [
            {"uuid": f"{LOBBY_CAMERA}.v0", "name": "Lobby"},
            {"uuid": PARKING_LOT_CAMERA, "name": "Parking Lot"},
            {"uuid": None, "name": "No uuid"},
            {"uuid": LOADING_DOCK_CAMERA, "name": None},
        ],
        "error": False,
    }
    transport = httpx.MockTransport(lambda _request: httpx.Response(200, json=answer))
    async with RhombusClient(
        api_key=RHOMBUS_KEY, base_url="http://rhombus.invalid", transport=transport
    ) as client:
        names = await client.camera_names()
    assert {LOBBY_CAMERA: "Lobby", PARKING_LOT_CAMERA: "Parking Lot"} == names


async def test_camera_names_are_cached(rhombus: RhombusSimulator, client: RhombusClient) -> None:
    """A second call answers from the cache, untouched by a rename in Rhombus or by the caller."""
    first = await client.camera_names()
    rhombus.add_camera(LOBBY_CAMERA, "Front Lobby")
    first["mutated"] = "by the caller"
    second = await client.camera_names()
    assert (dict(DEFAULT_CAMERAS), 1) == (second, rhombus.calls[CAMERA_STATES_PATH])


async def test_concurrent_camera_name_lookups_share_one_request(
    rhombus: RhombusSimulator, client: RhombusClient
) -> None:
    """Five lookups at once make one request."""
    answers = await asyncio.gather(*(client.camera_names() for _ in range(5)))
    assert ([dict(DEFAULT_CAMERAS)] * 5, 1) == (answers, rhombus.calls[CAMERA_STATES_PATH])


async def test_camera_names_refresh_after_the_cache_time(rhombus: RhombusSimulator) -> None:
    """With a cache time of 0, every call asks again and sees a rename."""
    async with RhombusClient(
        api_key=RHOMBUS_KEY, base_url=rhombus.url, camera_cache_seconds=0.0
    ) as client:
        before = await client.camera_names()
        rhombus.add_camera(LOBBY_CAMERA, "Front Lobby")
        after = await client.camera_names()
    assert ("Lobby", "Front Lobby", 2) == (
        before[LOBBY_CAMERA],
        after[LOBBY_CAMERA],
        rhombus.calls[CAMERA_STATES_PATH],
    )


async def test_a_failed_camera_lookup_is_not_cached(
    rhombus: RhombusSimulator, client: RhombusClient
) -> None:
    """After a failed lookup the next call asks Rhombus again."""
    rhombus.inject(Fault("server_error", path=CAMERA_STATES_PATH))
    await failure(UnavailableError, client.camera_names())
    assert dict(DEFAULT_CAMERAS) == await client.camera_names()
    assert 2 == rhombus.calls[CAMERA_STATES_PATH]


# --- Authentication -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("api_key", "auth_scheme"), [(RHOMBUS_KEY, "Bearer"), (RHOMBUS_KEY, ""), ("", "api-token")]
)
async def test_missing_credential_is_an_authentication_error(
    rhombus: RhombusSimulator, api_key: str, auth_scheme: str
) -> None:
    """A wrong scheme or no key (401) raises AuthenticationError naming the regions."""
    async with RhombusClient(
        api_key=api_key, base_url=rhombus.url, auth_scheme=auth_scheme
    ) as client:
        error = await failure(AuthenticationError, client.get_clip(CLIP))
    assert 401 == rhombus.exchanges[-1].status
    assert (True, True) == ("region" in str(error), "api2.eu.rhombussystems.com" in str(error))
    assert not error.retryable


async def test_wrong_key_is_an_authentication_error(rhombus: RhombusSimulator) -> None:
    """A key Rhombus does not know (403) raises AuthenticationError naming the regions."""
    async with RhombusClient(api_key=WRONG_KEY, base_url=rhombus.url) as client:
        error = await failure(AuthenticationError, client.get_clip(CLIP))
    assert 403 == rhombus.exchanges[-1].status
    assert (True, True) == ("region" in str(error), "api2.eu.rhombussystems.com" in str(error))


async def test_partner_key_acts_for_its_client_org(clock: ManualClock) -> None:
    """In partner mode the client sends x-auth-org, and the answer matches the spec."""
    async with (
        RhombusSimulator(api_key=RHOMBUS_KEY, org_uuid=PARTNER_ORG, clock=clock) as sim,
        RhombusClient(
            api_key=RHOMBUS_KEY,
            base_url=sim.url,
            auth_scheme="partner-api-token",
            org_uuid=PARTNER_ORG,
        ) as client,
    ):
        sim.add_clip(CLIP)
        clip = await client.get_clip(CLIP)
        names = await client.camera_names()
    headers = [(e.headers["x-auth-scheme"], e.headers.get("x-auth-org")) for e in sim.exchanges]
    assert [("partner-api-token", PARTNER_ORG)] * 2 == headers
    assert (PARTNER_ORG, dict(DEFAULT_CAMERAS)) == (clip.org_uuid, names)
    for exchange in sim.exchanges:
        validate_exchange(exchange)


async def test_partner_key_for_another_org_is_refused(clock: ManualClock) -> None:
    """A partner client naming an org the key does not serve gets AuthenticationError."""
    async with (
        RhombusSimulator(api_key=RHOMBUS_KEY, org_uuid=PARTNER_ORG, clock=clock) as sim,
        RhombusClient(
            api_key=RHOMBUS_KEY,
            base_url=sim.url,
            auth_scheme="partner-api-token",
            org_uuid=DEFAULT_ORG_UUID,
        ) as client,
    ):
        await failure(AuthenticationError, client.get_clip(CLIP))
    assert 403 == sim.exchanges[-1].status


async def test_an_ordinary_key_sends_no_org(
    rhombus: RhombusSimulator, client: RhombusClient
) -> None:
    """Outside partner mode no x-auth-org header goes out."""
    await client.camera_names()
    headers = rhombus.exchanges[-1].headers
    assert ("api-token", False) == (headers["x-auth-scheme"], "x-auth-org" in headers)


# --- Rate limit -----------------------------------------------------------------------------------


async def test_rate_limit_pauses_every_call_until_retry_after_passes(
    rhombus: RhombusSimulator, client: RhombusClient
) -> None:
    """A 429 raises RateLimitedError; until Retry-After passes no call reaches Rhombus."""
    rhombus.add_clip(CLIP)
    rhombus.inject(Fault("rate_limit", retry_after=1))
    limited = await failure(RateLimitedError, client.get_clip(CLIP))
    assert (1.0, True) == (limited.retry_after, limited.retryable)
    assert 0 < client.paused_for <= 1
    sent = sum(rhombus.calls.values())
    refused = [
        await failure(RateLimitedError, client.get_clip(CLIP)),
        await failure(RateLimitedError, client.get_clips_page()),
        await failure(RateLimitedError, client.camera_names()),
    ]
    assert sent == sum(rhombus.calls.values())
    assert all(0 < error.retry_after <= 1 for error in refused)
    # Retry-After is at least a second of real time: the one sleep in this file.
    await asyncio.sleep(client.paused_for + 0.01)
    assert 0 == client.paused_for
    assert CLIP == (await client.get_clip(CLIP)).uuid
    assert sent + 1 == sum(rhombus.calls.values())


async def test_rhombus_token_bucket_is_honoured(clock: ManualClock) -> None:
    """Past the org's burst the simulator's own 429 pauses the client with its Retry-After."""
    async with (
        RhombusSimulator(
            api_key=RHOMBUS_KEY, clock=clock, rate_limit_per_second=0.5, rate_limit_burst=2
        ) as sim,
        RhombusClient(api_key=RHOMBUS_KEY, base_url=sim.url) as client,
    ):
        await client.get_clips_page()
        await client.get_clips_page()
        limited = await failure(RateLimitedError, client.get_clips_page())
        await failure(RateLimitedError, client.get_clips_page())
    assert (2.0, "2", 3) == (
        limited.retry_after,
        sim.exchanges[-1].response_headers["retry-after"],
        sim.calls[LIST_CLIPS_PATH],
    )


# --- Rhombus or the network failing ---------------------------------------------------------------


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_server_errors_are_unavailable(
    rhombus: RhombusSimulator, client: RhombusClient, status: int
) -> None:
    """A 5xx answer on any path raises UnavailableError, which is retryable."""
    rhombus.add_clip(CLIP)
    for path, call in CALLS.items():
        rhombus.inject(Fault("server_error", path=path, status=status))
        error = await failure(UnavailableError, call(client))
        assert (True, True) == (error.retryable, str(status) in str(error))
    assert [status] * 3 == [exchange.status for exchange in rhombus.exchanges]


async def test_a_slow_answer_times_out_as_unavailable(rhombus: RhombusSimulator) -> None:
    """An answer slower than the client's timeout raises UnavailableError."""
    rhombus.add_clip(CLIP)
    rhombus.inject(Fault("slow", delay=2.0))
    async with RhombusClient(api_key=RHOMBUS_KEY, base_url=rhombus.url, timeout=0.2) as client:
        error = await failure(UnavailableError, client.get_clip(CLIP))
        clip = await client.get_clip(CLIP)
    assert (True, CLIP) == (isinstance(error.__cause__, httpx.TimeoutException), clip.uuid)


async def test_a_refused_connection_is_unavailable() -> None:
    """Nothing listening on the port raises UnavailableError."""
    async with RhombusClient(api_key=RHOMBUS_KEY, base_url=closed_port_url()) as client:
        error = await failure(UnavailableError, client.get_clip(CLIP))
    assert isinstance(error.__cause__, httpx.ConnectError)


async def test_a_dropped_connection_is_unavailable(
    rhombus: RhombusSimulator, client: RhombusClient
) -> None:
    """Rhombus hanging up without an answer raises UnavailableError; the next call works."""
    rhombus.add_clip(CLIP)
    rhombus.inject(Fault("disconnect"))
    await failure(UnavailableError, client.get_clip(CLIP))
    assert (None, CLIP) == (rhombus.exchanges[-1].status, (await client.get_clip(CLIP)).uuid)


async def test_a_body_that_is_not_json_is_a_bad_response(
    rhombus: RhombusSimulator, client: RhombusClient
) -> None:
    """A 200 with an HTML body, on any path, raises BadResponseError."""
    for path, call in CALLS.items():
        rhombus.inject(Fault("garbage", path=path))
        error = await failure(BadResponseError, call(client))
        assert "not JSON" in str(error)
    assert ["garbage"] * 3 == [exchange.fault for exchange in rhombus.exchanges]


async def test_json_of_the_wrong_shape_is_a_bad_response(
    rhombus: RhombusSimulator, client: RhombusClient
) -> None:
    """A 200 whose JSON does not have the spec's shape, on any path, raises BadResponseError."""
    for path, call in CALLS.items():
        rhombus.inject(Fault("wrong_shape", path=path))
        await failure(BadResponseError, call(client))
    assert ["wrong_shape"] * 3 == [exchange.fault for exchange in rhombus.exchanges]


async def test_a_wrong_camera_answer_is_not_cached(
    rhombus: RhombusSimulator, client: RhombusClient
) -> None:
    """After a camera answer of the wrong shape the next call asks again and gets the names."""
    rhombus.inject(Fault("wrong_shape", path=CAMERA_STATES_PATH))
    await failure(BadResponseError, client.camera_names())
    assert dict(DEFAULT_CAMERAS) == await client.camera_names()


async def test_an_error_body_is_rejected(rhombus: RhombusSimulator, client: RhombusClient) -> None:
    """A 200 with error true, on any path, raises RejectedError carrying errorMsg."""
    rhombus.add_clip(CLIP)
    for path, call in CALLS.items():
        rhombus.inject(Fault("error_body", path=path, error_msg="Permission denied"))
        error = await failure(RejectedError, call(client))
        assert ("Permission denied", False) == (str(error), error.retryable)


# --- Secrets --------------------------------------------------------------------------------------


async def test_no_error_or_log_line_reveals_the_api_key(
    rhombus: RhombusSimulator, client: RhombusClient, caplog: pytest.LogCaptureFixture
) -> None:
    """Through every failure, neither an error message nor a log record holds the key."""
    caplog.set_level(logging.DEBUG)
    rhombus.add_clip(CLIP)
    expected: list[tuple[Fault, type[RhombusError]]] = [
        (Fault("server_error"), UnavailableError),
        (Fault("server_error", status=502), UnavailableError),
        (Fault("garbage"), BadResponseError),
        (Fault("wrong_shape"), BadResponseError),
        (Fault("error_body"), RejectedError),
        (Fault("disconnect"), UnavailableError),
        (Fault("rate_limit"), RateLimitedError),
    ]
    for fault, kind in expected:
        rhombus.inject(fault)
        await failure(kind, client.get_clip(CLIP))
    await failure(RateLimitedError, client.camera_names())
    async with RhombusClient(api_key=WRONG_KEY, base_url=rhombus.url) as wrong:
        await failure(AuthenticationError, wrong.get_clip(CLIP))
    async with RhombusClient(api_key=RHOMBUS_KEY, base_url=closed_port_url()) as nowhere:
        await failure(UnavailableError, nowhere.get_clip(CLIP))
    assert caplog.records
    assert (False, False) == (RHOMBUS_KEY in caplog.text, WRONG_KEY in caplog.text)


# --- The contract ---------------------------------------------------------------------------------


async def test_every_request_the_client_sends_matches_the_spec(
    rhombus: RhombusSimulator, client: RhombusClient, clock: ManualClock
) -> None:
    """After every call the client makes, each recorded exchange matches Rhombus's spec."""
    for _ in range(5):
        rhombus.add_clip()
    rhombus.add_clip(CLIP, device_uuids=[LOBBY_CAMERA, LOADING_DOCK_CAMERA])
    for _ in range(4):
        await client.get_clip(CLIP)
        clock.advance(3)
    await failure(RejectedError, client.get_clip(UNKNOWN_CLIP))
    first = await client.get_clips_page(page_size=2)
    await client.get_clips_page(page_size=2, page_token=first.next_page_token)
    page = await client.get_clips_page(page_size=4)
    rest = await client.get_clips_page(page_size=4, page_token=page.next_page_token)
    listed = [*page.clips, *rest.clips]
    await client.camera_names()
    assert (6, {GET_CLIP_PATH: 5, LIST_CLIPS_PATH: 4, CAMERA_STATES_PATH: 1}) == (
        len(listed),
        dict(rhombus.calls),
    )
    for exchange in rhombus.exchanges:
        assert "application/json" == exchange.headers["content-type"]
        validate_exchange(exchange)


async def test_calls_waiting_their_turn_honour_a_429_that_came_meanwhile(rhombus):
    """Calls queued behind the bot's own budget do not go out during Rhombus's Retry-After."""
    clip_id = rhombus.add_clip()
    rhombus.inject(Fault(kind="rate_limit", retry_after=3))
    async with RhombusClient(
        api_key=RHOMBUS_KEY, base_url=rhombus.url, calls_per_second=2
    ) as client:
        # A burst of four goes at once (one meets the 429); two wait for their turn, 0.5 s apart.
        results = await asyncio.gather(
            *(client.get_clip(clip_id) for _ in range(6)), return_exceptions=True
        )

    limited = [result for result in results if isinstance(result, RateLimitedError)]
    assert 3 == len(limited)
    assert 4 == rhombus.calls["/api/event/getClipWithProgress"]


async def queue_polls(
    client: RhombusClient, rhombus: RhombusSimulator, clip_id: str
) -> list[asyncio.Task[Clip]]:
    """Spend a 5-a-second budget on polls: ten go at once, four more wait their turn."""
    polls = [asyncio.create_task(client.get_clip(clip_id)) for _ in range(14)]
    await wait_until(lambda: rhombus.calls[GET_CLIP_PATH] == 10)
    return polls


async def test_a_persons_lookup_goes_ahead_of_queued_page_and_polls(
    rhombus: RhombusSimulator,
) -> None:
    """With the budget spent, a lookup asked for last reaches Rhombus first, then the page."""
    polled = rhombus.add_clip()
    looked_up = rhombus.add_clip()
    async with RhombusClient(
        api_key=RHOMBUS_KEY, base_url=rhombus.url, calls_per_second=5
    ) as client:
        polls = await queue_polls(client, rhombus, polled)
        page = asyncio.create_task(client.get_clips_page())
        lookup = asyncio.create_task(client.get_clip(looked_up, priority=Priority.LOOKUP))
        await asyncio.gather(*polls, page, lookup)

    received = [exchange.json.get("clipUuid", "page") for exchange in rhombus.exchanges]
    assert [polled] * 10 + [looked_up, "page"] + [polled] * 4 == received


async def test_camera_names_go_ahead_of_queued_polls(rhombus: RhombusSimulator) -> None:
    """A new status message waits for camera names: they do not queue behind polls."""
    polled = rhombus.add_clip()
    async with RhombusClient(
        api_key=RHOMBUS_KEY, base_url=rhombus.url, calls_per_second=5
    ) as client:
        polls = await queue_polls(client, rhombus, polled)
        names = asyncio.create_task(client.camera_names())
        await asyncio.gather(*polls, names)

    received = [exchange.path for exchange in rhombus.exchanges]
    assert [GET_CLIP_PATH] * 10 + [CAMERA_STATES_PATH] + [GET_CLIP_PATH] * 4 == received
