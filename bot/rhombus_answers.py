"""What the bot asks Rhombus and what Rhombus answers, as typed models (every field nullable)."""

from __future__ import annotations

from dataclasses import dataclass

from bot.cameras import (  # noqa: TC001  # pydantic reads annotations at runtime
    CameraLocation,
    CameraState,
    TimeWindow,
)
from bot.clips import ApiModel, Clip, Lenient


class ClipAnswer(ApiModel):
    """getClipWithProgress's answer."""

    clip: Clip | None = None


class ClipsPageAnswer(ApiModel):
    """getClipsWithProgress's answer: one page of saved clips."""

    saved_clips: list[Clip] | None = None
    page_token: Lenient[str] = None


class Camera(ApiModel):
    """A camera as getMinimalCameraStateList lists it, for its name."""

    uuid: Lenient[str] = None
    name: Lenient[str] = None


class CamerasAnswer(ApiModel):
    """getMinimalCameraStateList's answer, for camera names."""

    camera_states: list[Camera] | None = None


class CameraStatesAnswer(ApiModel):
    """getMinimalCameraStateList's answer, for making clips."""

    camera_states: list[CameraState] | None = None


class CameraLocationsAnswer(ApiModel):
    """getMinimalCameraLocationMap's answer."""

    camera_location_map: dict[str, CameraLocation] | None = None


class MaxSpliceAnswer(ApiModel):
    """getMaxSpliceDuration's answer."""

    max_duration: Lenient[int] = None


class PresenceAnswer(ApiModel):
    """getPresenceWindows's answer: recorded stretches by storage kind."""

    presence_windows: dict[str, list[TimeWindow] | None] | None = None


class SpliceAnswer(ApiModel):
    """spliceV3's answer: the new clip's uuid."""

    clip_uuid: Lenient[str] = None
    clip_uuid_list: Lenient[list[Lenient[str]]] = None


@dataclass(frozen=True)
class Splice:
    """What spliceV3 is asked to make: one camera's footage as a saved clip."""

    devices: list[str]  # facet uuids: `<camera>.v0`, and `<camera>.a0` for audio
    start_ms: int
    duration_sec: int
    title: str
    description: str
    visibility: str


@dataclass(frozen=True)
class ClipsPage:
    """One page of the organisation's saved clips, and the token for the next (None: last page)."""

    clips: list[Clip]
    next_page_token: str | None
