"""The followed clips as Rhombus last reported them, refreshed by the page when many are live."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

    from bot.clips import Clip
    from bot.rhombus import RhombusClient

logger = logging.getLogger(__name__)

PAGE_SIZE = 200


@dataclass(frozen=True)
class _Snapshot:
    clip: Clip
    at: float


class ClipFeed:
    """Answers "what is clip X now?" for every polling job with as few Rhombus calls as possible.

    With few clips followed, each question is one `getClipWithProgress`. From `batch_from` clips
    on, the first question of a round fetches `getClipsWithProgress` pages (200 clips a call,
    newest first) until every followed clip was seen, and the round's other questions are
    answered from that; a clip the pages did not return falls back to its own call.
    """

    def __init__(
        self,
        rhombus: RhombusClient,
        *,
        max_age: float,
        batch_from: int = 5,
        max_pages: int = 25,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._rhombus = rhombus
        self._max_age = max_age
        self._batch_from = batch_from
        self._max_pages = max_pages
        self._clock = clock
        self._followed: dict[str, int | None] = {}  # clip id -> createdAtMs, when known
        self._followers: Counter[str] = Counter()  # one clip may be followed in several channels
        self._snapshots: dict[str, _Snapshot] = {}
        self._refreshing: asyncio.Task[None] | None = None
        self.page_calls = 0
        self.single_calls = 0

    def follow(self, clip_id: str, created_at_ms: int | None) -> None:
        """Count one more follower of a clip."""
        self._followers[clip_id] += 1
        self._followed[clip_id] = created_at_ms

    def unfollow(self, clip_id: str) -> None:
        """Count one follower of a clip less; it is no longer live when none is left."""
        self._followers[clip_id] -= 1
        if self._followers[clip_id] <= 0:
            del self._followers[clip_id]
            self._followed.pop(clip_id, None)
            self._snapshots.pop(clip_id, None)

    @property
    def live(self) -> int:
        """How many distinct clips are followed."""
        return len(self._followed)

    async def get(self, clip_id: str) -> Clip:
        """The clip as Rhombus reports it now (at most `max_age` seconds old)."""
        if (fresh := self._fresh(clip_id)) is not None:
            return fresh
        if len(self._followed) >= self._batch_from and clip_id in self._followed:
            await self._refresh()
            if (fresh := self._fresh(clip_id)) is not None:
                return fresh
        self.single_calls += 1
        clip = await self._rhombus.get_clip(clip_id)
        if clip_id in self._followed:
            self._snapshots[clip_id] = _Snapshot(clip, self._clock())
        return clip

    def _fresh(self, clip_id: str) -> Clip | None:
        snapshot = self._snapshots.get(clip_id)
        if snapshot is not None and self._clock() - snapshot.at < self._max_age:
            return snapshot.clip
        return None

    async def _refresh(self) -> None:
        # One refresh at a time: every job asking meanwhile waits for the same pages.
        if self._refreshing is None or self._refreshing.done():
            self._refreshing = asyncio.create_task(self._fetch_pages())
        await asyncio.shield(self._refreshing)

    async def _fetch_pages(self) -> None:
        wanted = set(self._followed)
        known = [created for created in self._followed.values() if created is not None]
        oldest = min(known) if len(known) == len(self._followed) else None
        token: str | None = None
        for _ in range(self._max_pages):
            page = await self._rhombus.get_clips_page(page_size=PAGE_SIZE, page_token=token)
            self.page_calls += 1
            now = self._clock()
            for clip in page.clips:
                if clip.uuid in self._followed:
                    self._snapshots[clip.uuid] = _Snapshot(clip, now)
                    wanted.discard(clip.uuid)
            last = page.clips[-1].created_at_ms if page.clips else None
            # Newest first: past the oldest followed clip, later pages cannot hold any of them.
            past_oldest = oldest is not None and last is not None and last < oldest
            if not wanted or page.next_page_token is None or past_oldest:
                return
            token = page.next_page_token
