"""A followed clip in memory: its row, what polls know of it, and what its message shows."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bot.clips import Clip
from bot.progress import Progress
from bot.status_message import MadeFromSlack, StatusView

if TYPE_CHECKING:
    from collections.abc import Mapping

    from bot.store import Tracking


@dataclass(eq=False)
class Followed:
    """A followed tracking in memory, where its polls read and write it.

    `tracking` is the row (written whenever what the message shows changes, and resumed from
    after a restart); `progress` is what polls know of the clip; `recorded` is the clip last
    copied into the row.
    """

    tracking: Tracking
    progress: Progress
    recorded: Clip | None
    refresh_wanted: bool = False  # someone pressed Refresh: the next poll asks Rhombus itself
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @classmethod
    def resume(cls, tracking: Tracking) -> Followed:
        """Pick up a stored tracking where its row left it."""
        return cls.of(tracking, load_clip(tracking.clip))

    @classmethod
    def of(cls, tracking: Tracking, clip: Clip | None) -> Followed:
        """A tracking whose message shows `clip`."""
        progress = Progress(
            started_at=tracking.started_at,
            changed_at=tracking.changed_at,
            progress_at=tracking.progress_at,
            reached_at=tracking.reached_at,
            shown=clip,
            shown_percent=tracking.percent,
            notice=tracking.notice,
            seen=clip,
            seen_percent=tracking.percent,
            # What the message shows is not known (a crash right after posting it): edit it.
            stale=tracking.fingerprint is None,
        )
        return cls(tracking, progress, recorded=clip)

    def record(self) -> None:
        """Copy what polls learnt into the row, ahead of writing it."""
        tracking, progress = self.tracking, self.progress
        if progress.shown is not self.recorded and progress.shown is not None:
            tracking.clip = dump_clip(progress.shown)
            self.recorded = progress.shown
        tracking.percent = progress.shown_percent
        tracking.notice = progress.notice
        tracking.changed_at = progress.changed_at
        tracking.progress_at = progress.progress_at
        tracking.reached_at = progress.reached_at


def status_view(  # noqa: PLR0913  # everything a message shows
    tracking: Tracking,
    clip: Clip | None,
    cameras: Mapping[str, str],
    *,
    give_up_after: float,
    console_url: str,
    made: MadeFromSlack | None = None,
) -> StatusView:
    """Everything the tracking's status message shows, as stored in its row."""
    return StatusView(
        clip_id=tracking.clip_id,
        clip=clip,
        requester=tracking.requester_id,
        started_at=int(tracking.started_at),
        changed_at=int(tracking.changed_at),
        percent=tracking.percent,
        cameras=cameras,
        ending=tracking.ending,
        stopped_by=tracking.stopped_by,
        give_up_minutes=max(1, round(give_up_after / 60)),
        notice=tracking.notice,
        console_url=console_url,
        made=made,
    )


def dump_clip(clip: Clip) -> dict[str, Any]:
    """The clip as stored in a row: Rhombus's own field names, nulls left out."""
    return clip.model_dump(mode="json", by_alias=True, exclude_none=True)


def load_clip(data: dict[str, Any] | None) -> Clip | None:
    """A clip stored by `dump_clip`."""
    return Clip.model_validate(data) if data is not None else None
