"""A fake Rhombus API on 127.0.0.1: saved clips that progress by themselves, auth, limits, faults.

It answers the three calls the clip bot makes, POST with JSON in and out, shaped exactly as
Rhombus's OpenAPI spec shapes them:

- ``/api/event/getClipWithProgress``: one clip; an unknown clip is ``error: true`` inside a 200.
- ``/api/event/getClipsWithProgress``: the org's clips, newest first, in pages (``pageSize``
  1-200, opaque ``pageToken``), filtered by ``searchFilter`` (title), ``deviceUuidFilters``,
  ``filterByPrivate`` and ``timestampMsAfter``/``timestampMsBefore`` (footage time).
- ``/api/camera/getMinimalCameraStateList``: camera uuids (without facets) and names.

Each clip follows a script of `Step`s on the simulator's own clock from the moment it was added
(pass a `ManualClock` to move time by hand). Authentication, the organisation's token bucket and
injected `Fault`s behave as Rhombus does. Every request and answer is kept in
`RhombusSimulator.exchanges` (the last `max_exchanges`), and each request is passed to
`on_request` as it arrives.

Scenarios, built by `RhombusSimulator.from_scenario(name, ...)`:

``demo``
    Five clips with known uuids (the ``DEMO_*`` constants) on the default cameras, all starting
    when the simulator is built, ``step_seconds`` (default 4) per stage: one completes, one
    fails while rendering, one goes OFFLINE and then recovers and completes, one is DELETED
    while rendering, and one PRIVATE clip from two cameras completes.
``empty``
    The default cameras and no clips.
``bench``
    ``n_clips`` (default 500) clips titled ``Bench clip 0001``... on the default cameras,
    progressing slowly (``step_seconds`` default 60) from staggered starting points: in every
    ten, seven complete, one fails, one stays OFFLINE and one recovers from OFFLINE.
``flaky``
    The demo clips behind random faults on every path: 429 with ``fault_probability``
    (default 0.05), and 500, 503 and a 1.5 s delay with half that probability each.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import copy
import hashlib
import heapq
import http
import itertools
import json
import math
import random
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import (
    TYPE_CHECKING,
    Any,
    Literal,
    NamedTuple,
    Self,
    TypedDict,
    TypeGuard,
    TypeVar,
    Unpack,
    get_args,
)

from aiohttp import web

from bot.clips import CLIP_ID_PATTERN
from standins.rhombus_splicing import (
    EMPTY_BODY_PATHS,
    SPLICING_PATHS,
    MalformedSpliceError,
    Splicing,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping, Sequence
    from typing import TextIO

    from aiohttp.typedefs import Handler

GET_CLIP_PATH = "/api/event/getClipWithProgress"
LIST_CLIPS_PATH = "/api/event/getClipsWithProgress"
CAMERA_STATES_PATH = "/api/camera/getMinimalCameraStateList"
API_PATHS = (GET_CLIP_PATH, LIST_CLIPS_PATH, CAMERA_STATES_PATH)
# Where the media host serves a clip's mp4 and thumbnail (rhombus-api-examples-java getVideoUrl).
MEDIA_PATH = "/media/metadata/{region}/{name}"
MEDIA_CHUNK_BYTES = 256 * 1024

DEFAULT_API_KEY = "sim-key"
AUTH_SCHEMES = ("api-token", "api", "partner-api-token", "partner-api")
PARTNER_SCHEMES = ("partner-api-token", "partner-api")

RATE_LIMIT_TEXT = "Too many api requests. Enhance your calm."
MALFORMED_MSG = "JSON doesn't match expected object structure"
CLIP_NOT_FOUND_MSG = "Clip not found"
MAX_PAGE_SIZE = 200

T = TypeVar("T")

# Readable ids that are still well-formed RUUIDs (22 url-safe base64 characters, the last one
# carrying the 2 spare bits as zero, as Rhombus's own do).
DEFAULT_ORG_UUID = "SimulatedOrg000000000A"
DEFAULT_USER_UUID = "SimulatedUser00000000A"
DEFAULT_ROLE_UUID = "SimulatedRole00000000A"
DEFAULT_LOCATION_UUID = "SimulatedSite00000000A"
LOBBY_CAMERA = "LobbyCamera0000000000A"
LOADING_DOCK_CAMERA = "LoadingDockCamera0000A"
PARKING_LOT_CAMERA = "ParkingLotCamera00000A"
DEFAULT_CAMERAS: Mapping[str, str] = MappingProxyType(
    {LOBBY_CAMERA: "Lobby", LOADING_DOCK_CAMERA: "Loading Dock", PARKING_LOT_CAMERA: "Parking Lot"}
)

DEMO_COMPLETES = "DemoClipCompletes0000A"
DEMO_FAILS = "DemoClipFails00000000A"
DEMO_RECOVERS = "DemoClipRecovers00000A"
DEMO_DELETED = "DemoClipDeleted000000A"
DEMO_PRIVATE = "DemoClipPrivate000000A"
DEMO_CLIPS = (DEMO_COMPLETES, DEMO_FAILS, DEMO_RECOVERS, DEMO_DELETED, DEMO_PRIVATE)

SCENARIOS = ("demo", "empty", "bench", "flaky")

# The properties of Event_SavedClipWithProgressType: the names add_clip and set_clip accept.
CLIP_FIELDS = frozenset(
    [
        "accessSettings",
        "alterMap",
        "analyzed",
        "byteCount",
        "clipLocation",
        "clipLocationV2",
        "consoleDelete",
        "createdAtMs",
        "currentOperation",
        "description",
        "devicePresentationOrder",
        "deviceUuid",
        "deviceUuidMap",
        "deviceUuids",
        "durationSec",
        "externalTransactionId",
        "fisheyeHardware",
        "fisheyeMap",
        "integrationUploadList",
        "isMonitoringClip",
        "isVendorClip",
        "lastUpdatedSec",
        "mountingDirection",
        "orgUuid",
        "percentComplete",
        "sendToSharedStorage",
        "sha256Hex",
        "sourceAlertUuid",
        "status",
        "thumbnailLocation",
        "thumbnailLocationV2",
        "timestampMs",
        "title",
        "userUuid",
        "uuid",
        "videoResolution",
    ]
)
# The clip fields the spec types by reference (objects and enums) and so never allows as null:
# when such a field has no value, it is left out of the answer instead.
NEVER_NULL_CLIP_FIELDS = frozenset(
    {
        "accessSettings",
        "clipLocation",
        "fisheyeHardware",
        "mountingDirection",
        "status",
        "thumbnailLocation",
        "videoResolution",
    }
)
VISIBILITIES = ("PRIVATE", "ROLE_RESTRICTED", "ORG_WIDE")

_REGION = "us-west-2"
_DEFAULT_DURATION_SEC = 60
_FOOTAGE_LEAD_MS = 10 * 60 * 1000  # footage starts ten minutes before the clip is saved
_BYTES_PER_SECOND = 250_000  # about 2 Mbit/s of 1080p
_RESOLUTION = MappingProxyType({"width": 1920, "height": 1080})
_FORBIDDEN = MappingProxyType({"status": 403, "error": "Forbidden", "msg": "Access Denied"})
_WRONG_SHAPES: Mapping[str, object] = MappingProxyType(
    {
        GET_CLIP_PATH: {"clip": "nope", "error": False},
        LIST_CLIPS_PATH: {"savedClips": {"uuid": "nope"}, "pageToken": 7},
        CAMERA_STATES_PATH: {"cameraStates": "nope"},
    }
)


# --- Clocks and scripts --------------------------------------------------------------------------


class ManualClock:
    """A clock that moves only when told to, for deterministic tests."""

    def __init__(self, start: float = 0.0) -> None:
        """Start the clock at `start` seconds."""
        self.now = start

    def __call__(self) -> float:
        """Read the clock."""
        return self.now

    def advance(self, seconds: float) -> None:
        """Move the clock forward."""
        if seconds < 0:
            raise ValueError("a clock does not go backwards")
        self.now += seconds


class Step(NamedTuple):
    """One stage of a clip's script, from `after_seconds` after the clip was added to the next.

    The percentage moves evenly from `percent_complete` to `percent_end` over the stage; it
    stays put when `percent_end` is None, and in the last stage, which lasts forever.
    """

    after_seconds: float
    status: str
    current_operation: str | None
    percent_complete: int | None
    percent_end: int | None = None


_INITIATING = "Initiating"
_UPLOADING = "Uploading video"
_RENDERING = "Processing video"
_COMPLETE = "Complete"
_OFFLINE = "Waiting for camera to come online"
_DELETED = "Deleted"
RENDER_FAILED = "Render failed: camera storage unavailable"


def completes(step_seconds: float = 3.0) -> tuple[Step, ...]:
    """INITIATING -> UPLOADING 0..100 -> RENDERING 0..100 -> COMPLETE, `step_seconds` each."""
    s = step_seconds
    return (
        Step(0, "INITIATING", _INITIATING, 0),
        Step(s, "UPLOADING", _UPLOADING, 0, 100),
        Step(2 * s, "RENDERING", _RENDERING, 0, 100),
        Step(3 * s, "COMPLETE", _COMPLETE, 100),
    )


def fails(step_seconds: float = 3.0, reason: str = RENDER_FAILED) -> tuple[Step, ...]:
    """Like `completes` until rendering is 60 % done, then FAILED with `reason` as operation."""
    s = step_seconds
    return (
        *completes(s)[:2],
        Step(2 * s, "RENDERING", _RENDERING, 0, 60),
        Step(3 * s, "FAILED", reason, 60),
    )


def goes_offline(step_seconds: float = 3.0) -> tuple[Step, ...]:
    """Upload 40 % of the footage, then OFFLINE (the camera dropped off) forever."""
    s = step_seconds
    return (
        Step(0, "INITIATING", _INITIATING, 0),
        Step(s, "UPLOADING", _UPLOADING, 0, 40),
        Step(2 * s, "OFFLINE", _OFFLINE, 40),
    )


def recovers_from_offline(
    step_seconds: float = 3.0, offline_seconds: float | None = None
) -> tuple[Step, ...]:
    """OFFLINE at 40 % of the upload for `offline_seconds` (default two steps), then complete."""
    s = step_seconds
    back = 2 * s + (2 * s if offline_seconds is None else offline_seconds)
    return (
        *goes_offline(s),
        Step(back, "UPLOADING", _UPLOADING, 40, 100),
        Step(back + s, "RENDERING", _RENDERING, 0, 100),
        Step(back + 2 * s, "COMPLETE", _COMPLETE, 100),
    )


def gets_deleted(step_seconds: float = 3.0) -> tuple[Step, ...]:
    """Deleted by someone in the console half way through rendering: DELETED from then on."""
    s = step_seconds
    return (
        *completes(s)[:2],
        Step(2 * s, "RENDERING", _RENDERING, 0, 50),
        Step(3 * s, "DELETED", _DELETED, 50),
    )


def stays(
    status: str, current_operation: str | None = None, percent_complete: int | None = None
) -> tuple[Step, ...]:
    """A clip that never moves: one stage, forever."""
    return (Step(0, status, current_operation, percent_complete),)


def _check_script(script: Sequence[Step]) -> tuple[Step, ...]:
    steps = tuple(script)
    if not steps or steps[0].after_seconds != 0:
        raise ValueError("a script starts with a step at 0 seconds")
    for earlier, later in itertools.pairwise(steps):
        if later.after_seconds < earlier.after_seconds:
            raise ValueError("script steps go forward in time")
    for step in steps:
        start, end = step.percent_complete, step.percent_end
        if end is not None and (start is None or end < start):
            raise ValueError(f"{step}: the percentage only moves forward within a step")
    return steps


def _position(script: tuple[Step, ...], elapsed: float) -> tuple[Step, int | None, float]:
    """Where a script is after `elapsed` seconds: its step, its percentage, and since when."""
    index = 0
    for candidate, step in enumerate(script):
        if step.after_seconds > elapsed:
            break
        index = candidate
    step = script[index]
    start, end = step.percent_complete, step.percent_end
    if start is None or end is None or end == start or index + 1 == len(script):
        return step, start, step.after_seconds
    span = script[index + 1].after_seconds - step.after_seconds
    fraction = min(1.0, max(0.0, (elapsed - step.after_seconds) / span))
    moved = math.floor(fraction * (end - start))
    return step, start + moved, step.after_seconds + span * moved / (end - start)


# --- Faults and exchanges ------------------------------------------------------------------------

FaultKind = Literal[
    "rate_limit", "server_error", "slow", "garbage", "wrong_shape", "error_body", "disconnect"
]


@dataclass(frozen=True)
class Fault:
    """One injected failure: what goes wrong, on which path (None: any), how often.

    `times` is how many requests it spoils (-1: until cleared); each matching request is
    spoiled with `probability`, drawn from the simulator's seeded random generator.
    """

    kind: FaultKind
    path: str | None = None
    times: int = 1
    retry_after: int = 1
    status: int = 500
    delay: float = 0.0
    error_msg: str = "Unable to process the request, please try again later"
    probability: float = 1.0

    def __post_init__(self) -> None:
        """Refuse a fault that could not happen."""
        problems = [
            f"unknown fault kind {self.kind!r}" if self.kind not in get_args(FaultKind) else "",
            "times is a positive count or -1" if self.times == 0 or self.times < -1 else "",
            "retry_after is at least 1 second" if self.retry_after < 1 else "",
            "status is a 5xx status" if not 500 <= self.status <= 599 else "",
            "delay is not negative" if self.delay < 0 else "",
            "probability is between 0 and 1" if not 0.0 <= self.probability <= 1.0 else "",
        ]
        if any(problems):
            raise ValueError("; ".join(problem for problem in problems if problem))


@dataclass
class Exchange:
    """One request the simulator received and its answer (`status` None: it never answered).

    Header names are lowercase; `json` and `response_json` are the parsed bodies, or None when
    a body is not JSON.
    """

    method: str
    path: str
    headers: dict[str, str]
    at: float
    body: bytes = b""
    json: Any = None
    status: int | None = None
    response_headers: dict[str, str] = field(default_factory=dict)
    response_body: bytes = b""
    response_json: Any = None
    fault: FaultKind | None = None


_EXCHANGE = web.RequestKey("rhombus_sim_exchange", Exchange)


@dataclass
class _ArmedFault:
    fault: Fault
    remaining: int


@dataclass
class _Clip:
    uuid: str
    seq: int
    added_at: float
    base: dict[str, Any]
    script: tuple[Step, ...] | None
    held: dict[str, Any] = field(default_factory=dict)  # the scripted state when it stopped
    fields: dict[str, Any] = field(default_factory=dict)  # set explicitly: they always win


class _TokenBucket:
    """Rhombus's per-organisation limit: `rate` tokens a second, at most `burst` saved up."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float]) -> None:
        self._rate = rate
        self._burst = burst
        self._clock = clock
        self._tokens = float(burst)
        self._at = clock()

    def take(self) -> int | None:
        """Take a token: None when there was one, else the whole seconds until there is."""
        now = self._clock()
        self._tokens = min(float(self._burst), self._tokens + (now - self._at) * self._rate)
        self._at = now
        if self._tokens >= 1:
            self._tokens -= 1
            return None
        return max(1, math.ceil((1 - self._tokens) / self._rate))


class _HangUpError(Exception):
    """The answer to this request is to close the connection."""


class _MalformedError(Exception):
    """The body does not deserialise into the request object: Rhombus answers 500."""


class _BadRequestError(Exception):
    """The body deserialises but a value is out of range: Rhombus answers 400."""


class SimulatorOptions(TypedDict, total=False):
    """The settings of a `RhombusSimulator` that `from_scenario` passes on."""

    api_key: str
    org_uuid: str | None
    clock: Callable[[], float]
    seed: int | None
    rate_limit_per_second: float | None
    rate_limit_burst: int
    epoch: float | None
    max_exchanges: int
    max_body_bytes: int
    media_digests: bool


# --- The simulator -------------------------------------------------------------------------------


class RhombusSimulator:
    """A Rhombus organisation's clips and cameras, served over HTTP like api2.rhombussystems.com."""

    def __init__(  # noqa: PLR0913  # every setting is keyword-only and has a default
        self,
        *,
        api_key: str = DEFAULT_API_KEY,
        org_uuid: str | None = None,
        clock: Callable[[], float] = time.monotonic,
        seed: int | None = None,
        rate_limit_per_second: float | None = None,
        rate_limit_burst: int = 100,
        epoch: float | None = None,
        step_seconds: float = 3.0,
        max_exchanges: int = 10_000,
        max_body_bytes: int = 1024 * 1024,
        media_digests: bool = True,
    ) -> None:
        """Set up an organisation with the default cameras and no clips.

        `org_uuid` set: partner schemes must name it in `x-auth-org`. `epoch`: the Unix time
        the clock's present reading stands for (default: now). `step_seconds`: the stage length
        of the default script. `rate_limit_per_second`: turn on the org's token bucket.
        `media_digests`: give a complete clip's `sha256Hex` (hashing every clip's bytes once).
        """
        if rate_limit_per_second is not None and rate_limit_per_second <= 0:
            raise ValueError("rate_limit_per_second must be positive")
        if rate_limit_burst < 1 or max_exchanges < 1 or max_body_bytes < 1:
            raise ValueError("rate_limit_burst, max_exchanges and max_body_bytes are at least 1")
        self.api_key = api_key
        self.org_uuid = org_uuid
        self.clock = clock
        self.step_seconds = step_seconds
        self.exchanges: list[Exchange] = []
        self.calls: Counter[str] = Counter()
        # Called with each request as it arrives (before it is answered), e.g. to count calls
        # over time when `max_exchanges` keeps only a few.
        self.on_request: Callable[[Exchange], None] | None = None
        self._max_exchanges = max_exchanges
        self._max_body_bytes = max_body_bytes
        self._rng = random.Random(seed)  # noqa: S311  # a simulation, not cryptography
        self._epoch_offset = (time.time() if epoch is None else epoch) - clock()
        self._clips: dict[str, _Clip] = {}
        self._cameras: dict[str, str | None] = dict(DEFAULT_CAMERAS)
        self._camera_fields: dict[str, dict[str, object]] = {}  # fields set by set_camera
        # spliceV3 and what goes with it (standins/rhombus_splicing.py).
        self.splicing = Splicing(self)
        self._faults: list[_ArmedFault] = []
        self._bucket = (
            None
            if rate_limit_per_second is None
            else _TokenBucket(rate_limit_per_second, rate_limit_burst, clock)
        )
        self._seq = 0
        self._media_digests = media_digests
        self._digests: dict[tuple[str, int], str] = {}
        self._runner: web.AppRunner | None = None
        self._url: str | None = None

    @classmethod
    def from_scenario(
        cls,
        name: str,
        *,
        step_seconds: float | None = None,
        n_clips: int = 500,
        fault_probability: float = 0.05,
        **options: Unpack[SimulatorOptions],
    ) -> Self:
        """Build a simulator holding one of the `SCENARIOS` (see the module's docstring)."""
        if name not in SCENARIOS:
            raise ValueError(f"unknown scenario {name!r}: choose one of {', '.join(SCENARIOS)}")
        steps = step_seconds if step_seconds is not None else 60.0 if name == "bench" else 4.0
        if name == "bench":
            options.setdefault("media_digests", False)  # thousands of clips: no hashing
        simulator = cls(step_seconds=steps, **options)
        if name in {"demo", "flaky"}:
            _add_demo_clips(simulator, steps)
        if name == "bench":
            stagger = random.Random(options.get("seed"))  # noqa: S311  # a simulation
            _add_bench_clips(simulator, steps, n_clips, stagger)
        if name == "flaky":
            _add_flaky_faults(simulator, fault_probability)
        return simulator

    # --- Clips and cameras

    @property
    def clip_uuids(self) -> list[str]:
        """The uuids of the clips the simulator knows, in the order they were added."""
        return list(self._clips)

    def add_clip(  # noqa: PLR0913  # mirrors the clip's own fields
        self,
        clip_uuid: str | None = None,
        *,
        title: str | None = "Saved clip",
        script: Sequence[Step] | None = None,
        visibility: str = "ORG_WIDE",
        device_uuids: Sequence[str] | None = None,
        started_ago: float = 0.0,
        **fields: object,
    ) -> str:
        """Add a clip that follows `script` (default: `completes`); return its uuid.

        `fields` are spec-named clip fields (`durationSec=30`, `description=...`); they always
        win over the script. `device_uuids` default to one of the default cameras; a facet
        (`.v0`) is added where missing. `started_ago` backdates the clip on the clock.
        """
        uuid = self._new_ruuid() if clip_uuid is None else _checked_ruuid(clip_uuid, "clip uuid")
        if uuid in self._clips:
            raise ValueError(f"clip {uuid} already exists")
        _check_fields(fields)
        if visibility not in VISIBILITIES:
            raise ValueError(f"visibility is one of {', '.join(VISIBILITIES)}")
        steps = _check_script(completes(self.step_seconds) if script is None else script)
        cameras = list(DEFAULT_CAMERAS)
        devices = (
            [f"{cameras[self._seq % len(cameras)]}.v0"]
            if device_uuids is None
            else [_with_facet(device) for device in device_uuids]
        )
        added_at = self.clock() - started_ago
        created_ms = self._epoch_ms(added_at)
        base: dict[str, Any] = {
            "uuid": uuid,
            "title": title,
            "description": "",
            "status": None,
            "currentOperation": None,
            "percentComplete": None,
            "createdAtMs": created_ms,
            "timestampMs": created_ms - _FOOTAGE_LEAD_MS,
            "durationSec": _DEFAULT_DURATION_SEC,
            "lastUpdatedSec": None,
            "deviceUuids": devices,
            "accessSettings": _access_settings(visibility),
            "clipLocation": {"region": _REGION},
            "thumbnailLocation": {"region": _REGION},
            "orgUuid": self.org_uuid or DEFAULT_ORG_UUID,
            "userUuid": DEFAULT_USER_UUID,
            "videoResolution": None,
            "byteCount": None,
        }
        self._clips[uuid] = _Clip(uuid, self._seq, added_at, base, steps, fields=dict(fields))
        self._seq += 1
        return uuid

    def set_clip(self, clip_uuid: str, **fields: object) -> None:
        """Overwrite spec-named fields now (`status="OFFLINE"`, `title=None`); stop its script."""
        clip = self._clip(clip_uuid)
        _check_fields(fields)
        now = self.clock()
        if clip.script is not None:
            clip.held = self._scripted(clip, now)
            clip.script = None
        clip.held["lastUpdatedSec"] = self._epoch_sec(now)
        clip.fields.update(fields)

    def delete_clip(self, clip_uuid: str) -> None:
        """Mark a clip DELETED, as deleting it in the console does; it still answers."""
        self.set_clip(clip_uuid, status="DELETED", currentOperation=_DELETED)

    def forget_clip(self, clip_uuid: str) -> None:
        """Drop a clip entirely: from now on Rhombus does not know it (`error: true`)."""
        self._clip(clip_uuid)
        del self._clips[clip_uuid]

    def clip_json(self, clip_uuid: str) -> dict[str, Any]:
        """The clip as getClipWithProgress would return it now."""
        return self._render(self._clip(clip_uuid), self.clock())

    def add_camera(self, camera_uuid: str, name: str | None) -> None:
        """Add (or rename) a camera; `camera_uuid` is a bare RUUID, without facet."""
        self._cameras[_checked_ruuid(camera_uuid, "camera uuid")] = name

    def set_camera(self, camera_uuid: str, **state: object) -> None:
        """Set spec-named camera state fields (`mummified=True`, `connectionStatus="RED"`)."""
        self._camera_fields.setdefault(_checked_ruuid(camera_uuid, "camera uuid"), {}).update(state)

    def camera_names(self) -> dict[str, str | None]:
        """Camera uuid -> name, for every camera."""
        return dict(self._cameras)

    def new_clip_uuid(self) -> str:
        """A uuid no clip has."""
        return self._new_ruuid()

    def restart_clip(self, clip_uuid: str, script: Sequence[Step] | None = None) -> None:
        """Start a clip's script (default: `completes`) again from now, as a retried splice."""
        clip = self._clip(clip_uuid)
        clip.script = _check_script(completes(self.step_seconds) if script is None else script)
        clip.added_at = self.clock()
        clip.held = {}
        for key in ("status", "currentOperation", "percentComplete"):
            clip.fields.pop(key, None)

    # --- Faults

    @property
    def faults(self) -> list[Fault]:
        """The injected faults that are still armed, in the order they are tried."""
        return [armed.fault for armed in self._faults]

    def inject(self, fault: Fault) -> None:
        """Arm a fault; faults are tried in the order they were injected."""
        self._faults.append(_ArmedFault(fault, fault.times))

    def clear_faults(self) -> None:
        """Disarm every injected fault."""
        self._faults.clear()

    # --- Serving

    @property
    def url(self) -> str:
        """The base URL of the running server, like http://127.0.0.1:54321."""
        if self._url is None:
            raise RuntimeError("the simulator is not running: start() it first")
        return self._url

    def app(self) -> web.Application:
        """A fresh aiohttp application serving the simulator, for any aiohttp runner."""

        @web.middleware
        async def record(request: web.Request, handler: Handler) -> web.StreamResponse:
            return await self._record(request, handler)

        application = web.Application(middlewares=[record], client_max_size=self._max_body_bytes)
        for path in (*API_PATHS, *SPLICING_PATHS):
            application.router.add_post(path, self._serve)
        application.router.add_get(MEDIA_PATH, self._serve_media)
        return application

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve on `host`:`port` (0: any free port); return the base URL."""
        if self._runner is not None:
            raise RuntimeError("the simulator is already running")
        # handler_cancellation: a client that gives up on a slow answer ends its handler too.
        runner = web.AppRunner(
            self.app(), access_log=None, handler_cancellation=True, shutdown_timeout=1.0
        )
        await runner.setup()
        try:
            await web.TCPSite(runner, host, port).start()
        except OSError:
            await runner.cleanup()
            raise
        bound_port = runner.addresses[0][1]
        self._runner = runner
        self._url = (
            f"http://[{host}]:{bound_port}" if ":" in host else f"http://{host}:{bound_port}"
        )
        return self._url

    async def stop(self) -> None:
        """Stop serving; safe to call when not running."""
        runner, self._runner, self._url = self._runner, None, None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> Self:
        """Start serving on a free port of 127.0.0.1."""
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        """Stop serving."""
        await self.stop()

    # --- Request handling

    async def _record(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        exchange = Exchange(
            method=request.method,
            path=request.path,
            headers={name.lower(): value for name, value in request.headers.items()},
            at=self.clock(),
        )
        self.exchanges.append(exchange)
        if len(self.exchanges) > self._max_exchanges:
            del self.exchanges[: len(self.exchanges) - self._max_exchanges]
        self.calls[request.path] += 1
        if self.on_request is not None:
            self.on_request(exchange)
        request[_EXCHANGE] = exchange
        try:
            exchange.body = await request.read()
            exchange.json = _json_or_none(exchange.body)
            response = await handler(request)
        except web.HTTPException as refusal:  # 404, 405, 413: aiohttp's own answers
            _record_answer(exchange, refusal)
            raise
        except _HangUpError:
            if request.transport is not None:
                request.transport.close()
            return web.Response(status=http.HTTPStatus.NO_CONTENT)  # never sent
        _record_answer(exchange, response)
        return response

    async def serve_admitted(self, request: web.Request) -> web.StreamResponse:
        """Answer a request whose key a front for many organisations already matched to this one.

        `standins/rhombus_cloud.py` serves several organisations on one port: it checks the
        credentials, then hands the request here, where it is recorded, meets this
        organisation's bucket and faults, and is answered, as if it had come to `url`.
        """
        handler = self._admitted_media if request.method == "GET" else self._admitted
        return await self._record(request, handler)

    async def _serve(self, request: web.Request) -> web.Response:
        refusal = await self._gate(request)
        if refusal is not None:
            return refusal
        return self._respond(request.path, request[_EXCHANGE].body)

    async def _admitted(self, request: web.Request) -> web.Response:
        refusal = await self._admit(request)
        if refusal is not None:
            return refusal
        return self._respond(request.path, request[_EXCHANGE].body)

    async def _gate(self, request: web.Request) -> web.Response | None:
        """What every request meets first: the key, the org's bucket, injected faults."""
        refusal = self._refuse(request[_EXCHANGE].headers)
        if refusal is not None:
            return refusal
        return await self._admit(request)

    async def _admit(self, request: web.Request) -> web.Response | None:
        """What a request with the organisation's credentials meets: its bucket, faults."""
        exchange = request[_EXCHANGE]
        # The bucket belongs to the organisation, which Rhombus knows only once the key is checked.
        wait = self._bucket.take() if self._bucket is not None else None
        if wait is not None:
            return _too_many_requests(wait)
        fault = self._pick_fault(request.path)
        if fault is not None:
            exchange.fault = fault.kind
            if fault.kind == "disconnect":
                raise _HangUpError
            if fault.kind != "slow":
                return _fault_answer(fault, request.path)
            await asyncio.sleep(fault.delay)
        return None

    def _respond(self, path: str, raw: bytes) -> web.Response:  # noqa: PLR0911  # one per path
        self.splicing.settle()
        if path in SPLICING_PATHS:
            try:
                body = _parse_object(raw, empty_ok=path in EMPTY_BODY_PATHS)
                return _json(200, self.splicing.answer(path, body))
            except (_MalformedError, MalformedSpliceError):
                return _json(500, {"msg": MALFORMED_MSG})
        try:
            body = _parse_object(raw, empty_ok=path == CAMERA_STATES_PATH)
            if path == GET_CLIP_PATH:
                return self._get_clip(body)
            if path == LIST_CLIPS_PATH:
                return self._list_clips(body)
            return self._camera_states(body)
        except _MalformedError:
            return _json(500, {"msg": MALFORMED_MSG})
        except _BadRequestError as error:
            return _json(400, {"status": 400, "error": "Bad Request", "msg": str(error)})

    def _refuse(self, headers: Mapping[str, str]) -> web.Response | None:
        key = headers.get("x-auth-apikey")
        scheme = headers.get("x-auth-scheme")
        if not key or scheme not in AUTH_SCHEMES:
            return _json(401, {"authenticationFailed": True})
        if key != self.api_key:
            return _json(403, dict(_FORBIDDEN))
        partner = scheme in PARTNER_SCHEMES
        if partner and self.org_uuid is not None and headers.get("x-auth-org") != self.org_uuid:
            return _json(403, dict(_FORBIDDEN))
        return None

    def _pick_fault(self, path: str) -> Fault | None:
        for armed in self._faults:
            fault = armed.fault
            if fault.path is not None and fault.path != path:
                continue
            if fault.probability < 1.0 and self._rng.random() >= fault.probability:
                continue
            if armed.remaining > 0:
                armed.remaining -= 1
                if armed.remaining == 0:
                    self._faults.remove(armed)
            return fault
        return None

    def _get_clip(self, body: dict[str, Any]) -> web.Response:
        clip_uuid = body.get("clipUuid")
        if not isinstance(clip_uuid, str) or not CLIP_ID_PATTERN.fullmatch(clip_uuid):
            raise _MalformedError
        clip = self._clips.get(clip_uuid)
        if clip is None:
            # The spec does not let `clip` be null: an unknown clip's answer leaves it out.
            return _json(200, _answer(CLIP_NOT_FOUND_MSG))
        return _json(200, _answer(clip=self._render(clip, self.clock())))

    def _list_clips(self, body: dict[str, Any]) -> web.Response:
        page_size = body.get("pageSize")
        if page_size is None:
            raise _BadRequestError("pageSize is required")
        if not _is_int(page_size):
            raise _MalformedError
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise _BadRequestError(f"pageSize must be between 1 and {MAX_PAGE_SIZE}")
        token = _optional(body, "pageToken", str)
        after = None if token is None else _read_page_token(token)
        wanted = _ClipFilter.read(body)
        everything = wanted.is_empty
        listed = []
        for clip in self._clips.values():
            # The order and the filters read no scripted field: only the page's clips are rendered,
            # so a page of a large organisation costs little more than a page of a small one.
            key = _sort_key(clip, clip.fields if "createdAtMs" in clip.fields else clip.base)
            if (after is None or key < after) and (
                everything or wanted.matches({**clip.base, **clip.fields})
            ):
                listed.append((key, clip))
        page = heapq.nlargest(page_size + 1, listed, key=lambda item: item[0])
        more = len(page) > page_size
        page = page[:page_size]
        next_token = _page_token(page[-1][0]) if more else None
        now = self.clock()
        clips = [self._render(clip, now) for _, clip in page]
        return _json(200, _answer(savedClips=clips, pageToken=next_token))

    def _camera_states(self, body: dict[str, Any]) -> web.Response:
        mummified = bool(_optional(body, "includeMummified", bool))
        states = [
            {**_camera_state(uuid, name), **self._camera_fields.get(uuid, {})}
            for uuid, name in self._cameras.items()
        ]
        if not mummified:
            states = [state for state in states if not state.get("mummified")]
        return _json(200, _answer(cameraStates=states))

    async def _serve_media(self, request: web.Request) -> web.StreamResponse:
        """A complete clip's mp4 (its `byteCount` bytes) or jpeg, with the API's credentials."""
        refusal = await self._gate(request)
        if refusal is not None:
            return refusal
        return await self._media(request)

    async def _admitted_media(self, request: web.Request) -> web.StreamResponse:
        refusal = await self._admit(request)
        if refusal is not None:
            return refusal
        return await self._media(request)

    async def _media(self, request: web.Request) -> web.StreamResponse:
        clip_uuid, _, extension = request.match_info["name"].rpartition(".")
        clip = self._clips.get(clip_uuid)
        data = self._render(clip, self.clock()) if clip is not None else {}
        region = (data.get("clipLocation") or {}).get("region")
        if data.get("status") != "COMPLETE" or request.match_info["region"] != region:
            return _json(404, {"status": 404, "error": "Not Found", "msg": "Not Found"})
        if extension == "jpeg":
            return web.Response(body=thumbnail_bytes(clip_uuid), content_type="image/jpeg")
        if extension != "mp4":
            return _json(404, {"status": 404, "error": "Not Found", "msg": "Not Found"})
        size = _media_size(data)
        response = web.StreamResponse(headers={"content-type": "video/mp4"})
        response.content_length = size
        await response.prepare(request)
        for chunk in media_chunks(clip_uuid, size):
            await response.write(chunk)
        await response.write_eof()
        return response

    # --- Clip state

    def _clip(self, clip_uuid: str) -> _Clip:
        try:
            return self._clips[clip_uuid]
        except KeyError:
            raise KeyError(f"the simulator has no clip {clip_uuid}") from None

    def _scripted(self, clip: _Clip, now: float) -> dict[str, Any]:
        if clip.script is None:
            return dict(clip.held)
        step, percent, since = _position(clip.script, now - clip.added_at)
        return {
            "status": step.status,
            "currentOperation": step.current_operation,
            "percentComplete": percent,
            "lastUpdatedSec": self._epoch_sec(clip.added_at + since),
        }

    def _render(self, clip: _Clip, now: float) -> dict[str, Any]:
        data = {**clip.base, **self._scripted(clip, now), **clip.fields}
        if data.get("status") == "COMPLETE":
            duration = data.get("durationSec")
            seconds = duration if _is_int(duration) else _DEFAULT_DURATION_SEC
            extras = {
                "videoResolution": dict(_RESOLUTION),
                "byteCount": seconds * _BYTES_PER_SECOND,
            }
            data.update({key: value for key, value in extras.items() if key not in clip.fields})
            if self._media_digests and "sha256Hex" not in clip.fields:
                size = _media_size(data)
                if (clip.uuid, size) not in self._digests:
                    self._digests[clip.uuid, size] = media_sha256(clip.uuid, size)
                data["sha256Hex"] = self._digests[clip.uuid, size]
        for key in NEVER_NULL_CLIP_FIELDS:
            if key in data and data[key] is None:
                del data[key]
        return copy.deepcopy(data)

    def _new_ruuid(self) -> str:
        while True:
            uuid = base64.urlsafe_b64encode(self._rng.randbytes(16)).decode().rstrip("=")
            if uuid not in self._clips:
                return uuid

    def _epoch_ms(self, at: float) -> int:
        return int((at + self._epoch_offset) * 1000)

    def _epoch_sec(self, at: float) -> int:
        return int(at + self._epoch_offset)


@dataclass(frozen=True)
class _ClipFilter:
    """The filters of a getClipsWithProgress request that the simulator honours."""

    search: str | None
    cameras: frozenset[str] | None
    private_only: bool
    after_ms: int | None
    before_ms: int | None

    @classmethod
    def read(cls, body: Mapping[str, Any]) -> _ClipFilter:
        search = _optional(body, "searchFilter", str)
        cameras = _optional(body, "deviceUuidFilters", list)
        if cameras is not None and not all(isinstance(camera, str) for camera in cameras):
            raise _MalformedError
        return cls(
            search=search.casefold() if search else None,
            cameras=frozenset(cameras) if cameras else None,
            private_only=bool(_optional(body, "filterByPrivate", bool)),
            after_ms=_optional(body, "timestampMsAfter", int),
            before_ms=_optional(body, "timestampMsBefore", int),
        )

    @property
    def is_empty(self) -> bool:
        """Whether every clip matches."""
        return self == _NO_FILTER

    def matches(self, clip: Mapping[str, Any]) -> bool:
        title = clip.get("title") or ""
        devices = {str(device).split(".", 1)[0] for device in clip.get("deviceUuids") or ()}
        access = clip.get("accessSettings") or {}
        timestamp = clip.get("timestampMs")
        return (
            (self.search is None or self.search in str(title).casefold())
            and (self.cameras is None or bool(self.cameras & devices))
            and (not self.private_only or access.get("visibility") == "PRIVATE")
            and (self.after_ms is None or (_is_int(timestamp) and timestamp >= self.after_ms))
            and (self.before_ms is None or (_is_int(timestamp) and timestamp <= self.before_ms))
        )


_NO_FILTER = _ClipFilter(None, None, private_only=False, after_ms=None, before_ms=None)


# --- Media ---------------------------------------------------------------------------------------

_MEDIA_PERIOD = 65_521  # a prime: a chunk in the wrong place changes the digest


def _pattern(clip_uuid: str) -> bytes:
    seed = hashlib.sha256(clip_uuid.encode()).digest()
    block = random.Random(seed).randbytes(_MEDIA_PERIOD)  # noqa: S311  # test data
    return block + block


def media_chunks(clip_uuid: str, size: int, chunk: int = MEDIA_CHUNK_BYTES) -> Iterator[bytes]:
    """The clip's mp4 as the simulator serves it: `size` deterministic bytes, in chunks."""
    pattern = memoryview(_pattern(clip_uuid))
    sent = 0
    while sent < size:
        offset = sent % _MEDIA_PERIOD
        length = min(chunk, size - sent, _MEDIA_PERIOD)
        yield bytes(pattern[offset : offset + length])
        sent += length


def media_bytes(clip_uuid: str, size: int) -> bytes:
    """The whole mp4 (for small clips in tests)."""
    return b"".join(media_chunks(clip_uuid, size))


def media_sha256(clip_uuid: str, size: int) -> str:
    """The sha256 of the clip's mp4, as `sha256Hex` gives it."""
    digest = hashlib.sha256()
    for chunk in media_chunks(clip_uuid, size):
        digest.update(chunk)
    return digest.hexdigest()


def thumbnail_bytes(clip_uuid: str) -> bytes:
    """A small stand-in for the clip's jpeg thumbnail (JPEG's start and end markers)."""
    return b"\xff\xd8\xff\xe0" + hashlib.sha256(clip_uuid.encode()).digest() * 32 + b"\xff\xd9"


def _media_size(data: Mapping[str, Any]) -> int:
    size = data.get("byteCount")
    return size if _is_int(size) and size >= 0 else 0


# --- Answers -------------------------------------------------------------------------------------


def _json(status: int, payload: object) -> web.Response:
    return web.Response(
        status=status, body=json.dumps(payload).encode(), content_type="application/json"
    )


def _answer(error_msg: str | None = None, **fields: object) -> dict[str, object]:
    """A Rhombus web-service answer: its fields, then the `error` flag and the messages."""
    return {**fields, "error": error_msg is not None, "errorMsg": error_msg, "warningMsg": None}


def _too_many_requests(retry_after: int) -> web.Response:
    return web.Response(
        status=429,
        body=RATE_LIMIT_TEXT.encode(),
        content_type="text/plain",
        headers={"Retry-After": str(retry_after)},
    )


def _server_error(status: int) -> web.Response:
    try:
        phrase = http.HTTPStatus(status).phrase
    except ValueError:
        phrase = "Server Error"
    if status == 500:
        return _json(500, {"status": 500, "error": phrase, "msg": phrase})
    # Gateway errors come from the load balancer in front of Rhombus, as HTML.
    page = (
        f"<html>\r\n<head><title>{status} {phrase}</title></head>\r\n<body>\r\n"
        f"<center><h1>{status} {phrase}</h1></center>\r\n</body>\r\n</html>\r\n"
    )
    return web.Response(status=status, body=page.encode(), content_type="text/html")


def _fault_answer(fault: Fault, path: str) -> web.Response:
    if fault.kind == "rate_limit":
        return _too_many_requests(fault.retry_after)
    if fault.kind == "server_error":
        return _server_error(fault.status)
    if fault.kind == "garbage":
        return web.Response(status=200, body=b"<html>oops", content_type="text/html")
    if fault.kind == "wrong_shape":
        return _json(200, _WRONG_SHAPES.get(path, ["nope"]))
    return _json(200, {"error": True, "errorMsg": fault.error_msg})


def _record_answer(exchange: Exchange, response: web.StreamResponse) -> None:
    exchange.status = response.status
    exchange.response_headers = {name.lower(): value for name, value in response.headers.items()}
    body = response.body if isinstance(response, web.Response) else None
    exchange.response_body = body if isinstance(body, bytes) else b""
    exchange.response_json = _json_or_none(exchange.response_body)


def _camera_state(uuid: str, name: str | None) -> dict[str, object]:
    return {
        "uuid": uuid,
        "name": name,
        "connectionStatus": "GREEN",
        "healthStatus": "GREEN",
        "healthStatusDetails": "NONE",
        "hwVariation": "CAMERA_R200",
        "locationUuid": DEFAULT_LOCATION_UUID,
        "mummified": False,
        "region": _REGION,
        "supportedFacets": ["v0", "a0"],
    }


def _access_settings(visibility: str) -> dict[str, object]:
    return {
        "visibility": visibility,
        "allowedUsers": [DEFAULT_USER_UUID] if visibility == "PRIVATE" else [],
        "allowedRoles": [DEFAULT_ROLE_UUID] if visibility == "ROLE_RESTRICTED" else [],
    }


# --- Reading requests ----------------------------------------------------------------------------


def _json_or_none(raw: bytes) -> object:
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        return None


def _parse_object(raw: bytes, *, empty_ok: bool) -> dict[str, Any]:
    if empty_ok and not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError) as error:
        raise _MalformedError from error
    if not isinstance(body, dict):
        raise _MalformedError
    return body


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _optional(body: Mapping[str, Any], key: str, kind: type[T]) -> T | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise _MalformedError
    return value


def _sort_key(clip: _Clip, data: Mapping[str, Any]) -> tuple[int, int]:
    created = data.get("createdAtMs")
    return (created if _is_int(created) else 0, clip.seq)


def _page_token(key: tuple[int, int]) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(key)).encode()).decode().rstrip("=")


def _read_page_token(token: str) -> tuple[int, int]:
    try:
        key = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (ValueError, binascii.Error, RecursionError):
        key = None
    if isinstance(key, list) and len(key) == 2:
        created, seq = key
        if _is_int(created) and _is_int(seq):
            return (created, seq)
    raise _BadRequestError("Invalid pageToken")


def _checked_ruuid(value: str, what: str) -> str:
    if not CLIP_ID_PATTERN.fullmatch(value):
        raise ValueError(f"{what} {value!r} is not a RUUID (22 characters of A-Z a-z 0-9 - _)")
    return value


def _with_facet(device: str) -> str:
    camera, dot, facet = device.partition(".")
    _checked_ruuid(camera, "device uuid")
    return device if dot and facet else f"{camera}.v0"


def _check_fields(fields: Mapping[str, object]) -> None:
    unknown = sorted(set(fields) - CLIP_FIELDS)
    if unknown:
        raise TypeError(f"not clip fields: {', '.join(unknown)} (use the spec's names)")


# --- Scenarios -----------------------------------------------------------------------------------


def _add_demo_clips(simulator: RhombusSimulator, step_seconds: float) -> None:
    s = step_seconds
    simulator.add_clip(
        DEMO_COMPLETES,
        title="Lobby: package delivery",
        description="Courier leaves a parcel at the front desk",
        script=completes(s),
        device_uuids=[LOBBY_CAMERA],
        durationSec=90,
    )
    simulator.add_clip(
        DEMO_FAILS,
        title="Loading dock: forklift near miss",
        script=fails(s),
        device_uuids=[LOADING_DOCK_CAMERA],
        durationSec=300,
    )
    simulator.add_clip(
        DEMO_RECOVERS,
        title="Parking lot: car break-in",
        script=recovers_from_offline(s),
        device_uuids=[PARKING_LOT_CAMERA],
        durationSec=240,
    )
    simulator.add_clip(
        DEMO_DELETED,
        title="Lobby: test recording",
        script=gets_deleted(s),
        device_uuids=[LOBBY_CAMERA],
        durationSec=30,
    )
    simulator.add_clip(
        DEMO_PRIVATE,
        title="Front desk: HR incident",
        script=completes(s),
        visibility="PRIVATE",
        device_uuids=[LOBBY_CAMERA, LOADING_DOCK_CAMERA],
        durationSec=120,
    )


def _add_bench_clips(
    simulator: RhombusSimulator, step_seconds: float, n_clips: int, stagger: random.Random
) -> None:
    scripts = (completes,) * 7 + (fails, goes_offline, recovers_from_offline)
    cameras = list(DEFAULT_CAMERAS)
    for index in range(n_clips):
        simulator.add_clip(
            title=f"Bench clip {index + 1:04d}",
            script=scripts[index % len(scripts)](step_seconds),
            device_uuids=[cameras[index % len(cameras)]],
            started_ago=stagger.uniform(0, 3 * step_seconds),
        )


def _add_flaky_faults(simulator: RhombusSimulator, probability: float) -> None:
    half = probability / 2
    simulator.inject(Fault("rate_limit", times=-1, probability=probability))
    simulator.inject(Fault("server_error", times=-1, probability=half, status=500))
    simulator.inject(Fault("server_error", times=-1, probability=half, status=503))
    simulator.inject(Fault("slow", times=-1, probability=half, delay=1.5))


# --- Running it alone ----------------------------------------------------------------------------


async def serve(port: int, scenario: str, api_key: str, *, out: TextIO | None = None) -> None:
    """Serve `scenario` on 127.0.0.1:`port` until cancelled, announcing it in one line."""
    simulator = RhombusSimulator.from_scenario(scenario, api_key=api_key)
    url = await simulator.start(port=port)
    try:
        clips = " ".join(simulator.clip_uuids) or "(none)"
        stream = sys.stdout if out is None else out
        stream.write(f"Rhombus simulator ({scenario}) at {url} api key {api_key} clips {clips}\n")
        stream.flush()
        await asyncio.Event().wait()
    finally:
        await simulator.stop()
