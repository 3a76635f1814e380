"""The organisation's cameras as a person names them: labels, matching by uuid or name, footage.

Pure: the camera list and presence windows come from `bot.rhombus`; this module only decides.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bot.clips import ApiModel, Lenient, is_clip_id, quote_for_reason

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

# How many candidates an ambiguous name lists, and how many close names a miss suggests.
CANDIDATES_SHOWN = 10
CLOSEST_SHOWN = 3
# Rhombus's DeviceStatusEnum: RED means the camera is disconnected.
_OFFLINE_STATUS = "RED"


# --- Rhombus's answers --------------------------------------------------------------------------


class CameraState(ApiModel):
    """One camera of getMinimalCameraStateList (MinimalDeviceStateType), the fields used."""

    uuid: Lenient[str] = None
    name: Lenient[str] = None
    location_uuid: Lenient[str] = None
    connection_status: Lenient[str] = None
    mummified: Lenient[bool] = None
    supported_facets: Lenient[list[Lenient[str]]] = None


class CameraLocation(ApiModel):
    """getMinimalCameraLocationMap's entry for one camera."""

    camera_name: Lenient[str] = None
    location_name: Lenient[str] = None


class TimeWindow(ApiModel):
    """A stretch of recorded footage (TimeWindowSeconds)."""

    start_seconds: Lenient[int] = None
    duration_seconds: Lenient[int] = None


# --- The directory --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Camera:
    """A camera a clip can be made from."""

    uuid: str
    name: str
    location: str | None = None
    online: bool = True
    has_audio: bool = False

    @property
    def label(self) -> str:
        """`Name · Location`, as the modal's options and lists show it."""
        return f"{self.name} · {self.location}" if self.location else self.name


def cameras_of(states: Iterable[CameraState], locations: dict[str, CameraLocation]) -> list[Camera]:
    """The cameras a clip can be made from: named, not archived (mummified), sorted by label."""
    cameras: dict[str, Camera] = {}
    for state in states:
        uuid = (state.uuid or "").split(".", 1)[0]
        if not is_clip_id(uuid) or state.mummified:
            continue
        where = locations.get(uuid)
        name = " ".join((state.name or (where.camera_name if where else None) or "").split())
        if not name:
            continue
        location = " ".join(((where.location_name if where else None) or "").split()) or None
        cameras[uuid] = Camera(
            uuid=uuid,
            name=name[:100],
            location=location[:100] if location else None,
            online=state.connection_status != _OFFLINE_STATUS,
            has_audio=any(f and f.startswith("a") for f in state.supported_facets or ()),
        )
    return sorted(cameras.values(), key=lambda camera: (camera.label.casefold(), camera.uuid))


@dataclass(frozen=True)
class Ambiguous:
    """Several cameras match what was typed."""

    candidates: list[Camera]


@dataclass(frozen=True)
class NoMatch:
    """No camera matches; the closest names."""

    closest: list[str]


def find_camera(cameras: Sequence[Camera], typed: str) -> Camera | Ambiguous | NoMatch:
    """A camera by uuid, else by exact name, else by a unique part of a name; case-insensitive."""
    wanted = " ".join(typed.split()).casefold()
    for camera in cameras:
        if camera.uuid == typed.strip():
            return camera
    exact = [camera for camera in cameras if camera.name.casefold() == wanted]
    if len(exact) == 1:
        return exact[0]
    if len(exact) > 1:
        return Ambiguous(exact)
    partial = [camera for camera in cameras if wanted and wanted in camera.name.casefold()]
    if len(partial) == 1:
        return partial[0]
    if partial:
        return Ambiguous(partial)
    names = {camera.name.casefold(): camera.name for camera in cameras}
    close = difflib.get_close_matches(wanted, list(names), n=CLOSEST_SHOWN, cutoff=0.4)
    return NoMatch([names[name] for name in close])


def describe_miss(typed: str, miss: Ambiguous | NoMatch) -> str:
    """What to tell a person whose camera did not match exactly one."""
    shown = quote_for_reason(typed)
    if isinstance(miss, Ambiguous):
        lines = [
            f"• {_inert(camera.label)} — `{camera.uuid}`"
            for camera in miss.candidates[:CANDIDATES_SHOWN]
        ]
        more = len(miss.candidates) - CANDIDATES_SHOWN
        if more > 0:
            lines.append(f"• …and {more} more")
        return (
            f"The camera {shown} matches {len(miss.candidates)} cameras; "
            'name one exactly (in double quotes if it has spaces, e.g. `"Loading Dock North"`) '
            "or give its id:\n" + "\n".join(lines)
        )
    closest = ", ".join(f"`{_inert(name)}`" for name in miss.closest)
    hint = f" Closest names: {closest}." if closest else ""
    return (
        f"No camera is called {shown}.{hint} "
        'Name one in double quotes if it has spaces, e.g. `/clip new "Loading Dock North" -10m 2m`.'
    )


# --- Footage ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Footage:
    """How much of a range has recorded footage: the seconds without any, as (start, end)."""

    missing: list[tuple[int, int]]
    total: int

    @property
    def none(self) -> bool:
        """Whether no second of the range is recorded."""
        return sum(end - start for start, end in self.missing) >= self.total

    @property
    def partial(self) -> bool:
        """Whether some but not all of the range is recorded."""
        return bool(self.missing) and not self.none


def footage(windows: Iterable[TimeWindow], start_sec: int, duration_sec: int) -> Footage:
    """Which parts of `[start, start + duration)` the presence windows leave without footage."""
    end = start_sec + duration_sec
    covered = sorted(
        (max(start_sec, w.start_seconds), min(end, w.start_seconds + w.duration_seconds))
        for w in windows
        if w.start_seconds is not None and w.duration_seconds is not None and w.duration_seconds > 0
    )
    missing: list[tuple[int, int]] = []
    at = start_sec
    for first, last in covered:
        if last <= at:
            continue
        if first > at:
            missing.append((at, min(first, end)))
        at = max(at, last)
        if at >= end:
            break
    if at < end:
        missing.append((at, end))
    return Footage(missing=[(a, b) for a, b in missing if b > a], total=duration_sec)


def _inert(text: str) -> str:
    return text.replace("`", "'").replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
