"""How a clip's facts read in Slack: length, size, resolution, who may see it.

Values outside sane ranges are nonsense from the API and read as None, to be left out.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.clips import Visibility

if TYPE_CHECKING:
    from bot.clips import Clip

_MAX_DURATION_SEC = 10**9
_MAX_BYTES = 10**18
_MAX_PIXELS = 100_000
_MAX_MINUTES = 10**6

VISIBILITY_TEXT = {
    Visibility.PRIVATE: "Only its owner",
    Visibility.ROLE_RESTRICTED: "Selected roles and users",
    Visibility.ORG_WIDE: "Everyone in the organization",
}


def duration_text(seconds: int | None) -> str | None:
    """`1 h 2 min 5 s`; None when unknown or nonsense."""
    if seconds is None or not 0 <= seconds <= _MAX_DURATION_SEC:
        return None
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{n} {unit}" for n, unit in ((hours, "h"), (minutes, "min"), (secs, "s")) if n]
    return " ".join(parts) or "0 s"


def resolution_text(clip: Clip) -> str | None:
    """Width by height in pixels; None when unknown or nonsense."""
    size = clip.video_resolution
    if size is None or size.width is None or size.height is None:
        return None
    if not (0 < size.width <= _MAX_PIXELS and 0 < size.height <= _MAX_PIXELS):
        return None
    return f"{size.width}\N{MULTIPLICATION SIGN}{size.height}"


def size_text(byte_count: int | None) -> str | None:
    """`60.0 MB`, in powers of 1,000 as Rhombus counts; None when unknown or nonsense."""
    if byte_count is None or not 0 <= byte_count < _MAX_BYTES:
        return None
    if byte_count < 1000:
        return f"{byte_count} B"
    value = byte_count / 1000
    for unit in ("KB", "MB", "GB", "TB"):
        if round(value, 1) < 1000:
            return f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} PB"


def minutes_text(count: int | None) -> str | None:
    """`1 minute`, `30 minutes`; None when unknown or nonsense."""
    if count is None or not 0 < count <= _MAX_MINUTES:
        return None
    return "1 minute" if count == 1 else f"{count} minutes"
