"""The Rhombus simulator's clip making: spliceV3 and what goes with it, shaped as the spec says.

- ``/api/video/spliceV3``: a new saved clip of one or more camera facets, which then progresses
  like any other (its `script`); unknown to getClipWithProgress for `unknown_for` seconds first.
- ``/api/video/getMaxSpliceDuration``: `max_duration` (None: the field is left out).
- ``/api/camera/getPresenceWindows``: recorded footage per camera, everything by default.
- ``/api/video/cancelSpliceV2``: the clip is deleted; ``/api/video/retrySplice``: a FAILED clip
  starts again.
- ``/api/camera/getMinimalCameraLocationMap``: each camera's name and its location's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bot.clips import CLIP_ID_PATTERN

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from standins.rhombus import RhombusSimulator, Step

SPLICE_PATH = "/api/video/spliceV3"
MAX_SPLICE_PATH = "/api/video/getMaxSpliceDuration"
PRESENCE_PATH = "/api/camera/getPresenceWindows"
CANCEL_SPLICE_PATH = "/api/video/cancelSpliceV2"
RETRY_SPLICE_PATH = "/api/video/retrySplice"
CAMERA_LOCATIONS_PATH = "/api/camera/getMinimalCameraLocationMap"
SPLICING_PATHS = (
    SPLICE_PATH,
    MAX_SPLICE_PATH,
    PRESENCE_PATH,
    CANCEL_SPLICE_PATH,
    RETRY_SPLICE_PATH,
    CAMERA_LOCATIONS_PATH,
)
# Paths whose request body may be empty.
EMPTY_BODY_PATHS = frozenset({MAX_SPLICE_PATH, CAMERA_LOCATIONS_PATH})
DEFAULT_LOCATION_NAME = "Headquarters"
CANCELLED_OPERATION = "Cancelled"


class MalformedSpliceError(Exception):
    """The body does not deserialise into the request object: Rhombus answers 500."""


@dataclass
class _Pending:
    appears_at: float
    add: Callable[[], None]


@dataclass
class Splicing:
    """The splice side of a simulated organisation; tests set its knobs directly."""

    simulator: RhombusSimulator
    max_duration: int | None = 3600
    # Camera uuid -> recorded stretches as (start epoch seconds, seconds); absent: all recorded.
    presence: dict[str, list[tuple[int, int]]] = field(default_factory=dict)
    locations: dict[str, str] = field(default_factory=dict)  # camera uuid -> location name
    error_msg: str | None = None  # the next splices answer `error: true` with it
    unknown_for: float = 0.0  # seconds a new clip is unknown to getClipWithProgress
    script: Sequence[Step] | None = None  # how new clips progress (default: completes)
    retry_script: Sequence[Step] | None = None  # how retried clips progress (default: completes)
    states_visibility: bool = True  # False: new clips answer without accessSettings
    requests: list[dict[str, Any]] = field(default_factory=list)  # every spliceV3 body
    cancelled: list[str] = field(default_factory=list)
    retried: list[str] = field(default_factory=list)
    _pending: list[_Pending] = field(default_factory=list)

    def settle(self) -> None:
        """Make the clips whose time to appear has come known."""
        now = self.simulator.clock()
        for pending in [p for p in self._pending if p.appears_at <= now]:
            self._pending.remove(pending)
            pending.add()

    def answer(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """The answer's JSON for one of `SPLICING_PATHS`."""
        if path == SPLICE_PATH:
            return self._splice(body)
        if path == MAX_SPLICE_PATH:
            return _answer(maxDuration=self.max_duration)
        if path == PRESENCE_PATH:
            return self._presence(body)
        if path == CANCEL_SPLICE_PATH:
            return self._cancel(body)
        if path == RETRY_SPLICE_PATH:
            return self._retry(body)
        return self._locations()

    def _splice(self, body: dict[str, Any]) -> dict[str, Any]:
        devices = body.get("deviceUuids")
        start, duration = body.get("startTimeMillis"), body.get("durationSec")
        if not isinstance(devices, list) or not all(isinstance(d, str) for d in devices):
            raise MalformedSpliceError
        if not _is_int(start) or not isinstance(duration, int) or isinstance(duration, bool):
            raise MalformedSpliceError
        self.requests.append(body)
        if self.error_msg is not None:
            return _answer(self.error_msg)
        cameras = self.simulator.camera_names()
        if not devices or any(d.split(".", 1)[0] not in cameras for d in devices):
            return _answer("Invalid device uuid")
        limit = self.max_duration or 3600
        if not 1 <= duration <= limit:
            return _answer(f"Duration must be between 1 and {limit} seconds")
        access = body.get("accessSettings") or {}
        visibility = access.get("visibility") if isinstance(access, dict) else None
        clip_uuid = self.simulator.new_clip_uuid()

        unstated: dict[str, Any] = {} if self.states_visibility else {"accessSettings": None}

        def add() -> None:
            self.simulator.add_clip(
                clip_uuid,
                title=body.get("title") if isinstance(body.get("title"), str) else None,
                script=self.script,
                visibility=visibility
                if visibility in {"PRIVATE", "ROLE_RESTRICTED"}
                else "ORG_WIDE",
                device_uuids=devices,
                description=body.get("description") or "",
                timestampMs=start,
                durationSec=duration,
                **unstated,
            )

        if self.unknown_for > 0:
            self._pending.append(_Pending(self.simulator.clock() + self.unknown_for, add))
        else:
            add()
        return _answer(clipUuid=clip_uuid, clipUuidList=[clip_uuid])

    def _presence(self, body: dict[str, Any]) -> dict[str, Any]:
        camera = body.get("cameraUuid")
        start, duration = body.get("startTimeSec"), body.get("durationSec")
        if (
            not isinstance(camera, str)
            or not isinstance(start, int)
            or not isinstance(duration, int)
        ):
            raise MalformedSpliceError
        recorded = self.presence.get(camera, [(start, duration)])
        windows = [
            {"startSeconds": s, "durationSeconds": d}
            for s, d in recorded
            if s < start + duration and s + d > start
        ]
        return _answer(presenceWindows={"VideoCloud": windows, "VideoLocal": []})

    def _cancel(self, body: dict[str, Any]) -> dict[str, Any]:
        clip_uuid = body.get("clipUuid")
        if not isinstance(clip_uuid, str) or not CLIP_ID_PATTERN.fullmatch(clip_uuid):
            raise MalformedSpliceError
        if clip_uuid not in self.simulator.clip_uuids:
            return _answer("Clip not found")
        self.cancelled.append(clip_uuid)
        self.simulator.delete_clip(clip_uuid)
        return _answer()

    def _retry(self, body: dict[str, Any]) -> dict[str, Any]:
        clip_uuid = body.get("clipUuid")
        if not isinstance(clip_uuid, str) or not CLIP_ID_PATTERN.fullmatch(clip_uuid):
            raise MalformedSpliceError
        if clip_uuid not in self.simulator.clip_uuids:
            return _answer("Clip not found")
        if self.simulator.clip_json(clip_uuid).get("status") != "FAILED":
            return _answer("Only a failed clip can be retried")
        self.retried.append(clip_uuid)
        self.simulator.restart_clip(clip_uuid, self.retry_script)
        return _answer()

    def _locations(self) -> dict[str, Any]:
        return _answer(
            cameraLocationMap={
                uuid: {
                    "cameraName": name,
                    "locationName": self.locations.get(uuid, DEFAULT_LOCATION_NAME),
                    "locationUuid": "SimulatedSite00000000A",
                }
                for uuid, name in self.simulator.camera_names().items()
            }
        )


def _answer(error_msg: str | None = None, **fields: object) -> dict[str, Any]:
    return {**fields, "error": error_msg is not None, "errorMsg": error_msg, "warningMsg": None}


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
