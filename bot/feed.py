"""The followed clips as Rhombus last reported them, refreshed by the page when many are live."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bot.budget import Priority
from bot.rhombus import RejectedError, UnavailableError

if TYPE_CHECKING:
    from collections.abc import Callable

    from bot.clips import Clip
    from bot.rhombus import RhombusClient

logger = logging.getLogger(__name__)

PAGE_SIZE = 200
# Pages a refresh may read: at least this many, and twice what the followed clips fill, since
# clips nobody follows sit between them.
MIN_PAGES = 25


@dataclass(frozen=True)
class _Snapshot:
    clip: Clip
    at: float


class ClipFeed:
    """Answers "what is clip X now?" for every polling job with as few Rhombus calls as possible.

    With few clips followed, each question is one `getClipWithProgress`. From `batch_from` clips
    on, `getClipsWithProgress` pages (200 clips a call, newest first) are read until every
    followed clip was seen, and the questions are answered from them:

    - a clip seen less than `max_age` ago is answered at once;
    - an older one is answered at once too, with what the last refresh saw, while a new refresh
      runs in the background (one at a time): polls never queue behind pages, and a clip is at
      most one refresh old;
    - a clip never seen waits for a refresh that looks for it (`poll`, for polling jobs, answers
      None at once instead); one the pages did not return (deleted, or further back than a
      refresh reads) falls back to its own call;
    - clips a page shows final for the first time are passed to `on_final`, so that their jobs
      can poll at once rather than at their turn (an end is what people wait for).

    When a refresh fails, older answers are not served: questions wait for the next refresh and
    get its error, so every poll learns that Rhombus is in trouble.
    """

    def __init__(
        self,
        rhombus: RhombusClient,
        *,
        max_age: float,
        batch_from: int = 5,
        min_pages: int = MIN_PAGES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._rhombus = rhombus
        self._max_age = max_age
        self._batch_from = batch_from
        self._min_pages = min_pages
        self._clock = clock
        self._followed: dict[str, int | None] = {}  # clip id -> createdAtMs, when known
        # Refreshes are numbered; a clip is looked for by those numbered above its entry here.
        self._generation = 0
        self._followed_during: dict[str, int] = {}
        self._followers: Counter[str] = Counter()  # one clip may be followed in several channels
        self._snapshots: dict[str, _Snapshot] = {}
        self._missed: set[str] = set()  # followed clips the last complete refresh did not return
        self._refreshing: asyncio.Task[None] | None = None
        self._failed = False  # whether the last refresh ended in an error
        # Told which followed clips a page showed final for the first time: their polls need
        # not wait for their turn to find out.
        self.on_final: Callable[[set[str]], None] | None = None

    def follow(self, clip_id: str, created_at_ms: int | None) -> None:
        """Count one more follower of a clip."""
        self._followers[clip_id] += 1
        self._followed[clip_id] = created_at_ms
        self._followed_during.setdefault(clip_id, self._generation)

    def unfollow(self, clip_id: str) -> None:
        """Count one follower of a clip less; it is no longer live when none is left."""
        self._followers[clip_id] -= 1
        if self._followers[clip_id] <= 0:
            del self._followers[clip_id]
            self._followed.pop(clip_id, None)
            self._followed_during.pop(clip_id, None)
            self._snapshots.pop(clip_id, None)
            self._missed.discard(clip_id)

    def close(self) -> None:
        """Stop the refresh under way; whoever waits for it is cancelled."""
        if self._refreshing is not None:
            self._refreshing.cancel()

    @property
    def max_pages(self) -> int:
        """How many pages one refresh may read for the clips followed now."""
        return max(self._min_pages, 2 * math.ceil(len(self._followed) / PAGE_SIZE))

    async def fresh(self, clip_id: str) -> Clip:
        """The clip as Rhombus reports it now, asked ahead of polls: someone wants the news."""
        return await self._get_one(clip_id, Priority.LOOKUP)

    async def recent(self, clip_id: str) -> Clip:
        """The clip as Rhombus reports it: at most `max_age` old, or one refresh old."""
        snapshot = self._snapshots.get(clip_id)
        if snapshot is not None and self._clock() - snapshot.at < self._max_age:
            return snapshot.clip
        if len(self._followed) >= self._batch_from and clip_id in self._followed:
            if snapshot is None or self._failed:
                before = snapshot.at if snapshot is not None else -math.inf
                await self._refreshed(clip_id, before)
                snapshot = self._snapshots.get(clip_id)
                if snapshot is not None and snapshot.at > before:
                    return snapshot.clip
            else:
                self._refresh()
                if clip_id not in self._missed:
                    return snapshot.clip  # the refresh under way brings the next one
        return await self._get_one(clip_id, Priority.POLL)

    async def poll(self, clip_id: str) -> Clip | None:
        """For a polling job: like `recent`, but never waiting for pages.

        None while the first refresh that looks for the clip is under way: the job asks again
        next round, rather than thousands of jobs waiting for the same pages and then all
        running again at the same moment.
        """
        if (
            len(self._followed) >= self._batch_from
            and clip_id in self._followed
            and clip_id not in self._snapshots
            and not self._failed
        ):
            if clip_id in self._missed:
                return await self._get_one(clip_id, Priority.POLL)
            self._refresh()
            return None
        return await self.recent(clip_id)

    async def _get_one(self, clip_id: str, priority: Priority) -> Clip:
        clip = await self._rhombus.get_clip(clip_id, priority=priority)
        if clip_id in self._followed:
            self._snapshots[clip_id] = _Snapshot(clip, self._clock())
        return clip

    async def _refreshed(self, clip_id: str, before: float) -> None:
        """Wait for a refresh that looked for the clip (the one under way, or else the next)."""
        while True:
            refresh = self._refresh()
            generation = self._generation
            await asyncio.shield(refresh)
            snapshot = self._snapshots.get(clip_id)
            if generation > self._followed_during.get(clip_id, 0) or (
                snapshot is not None and snapshot.at > before
            ):
                return

    def _refresh(self) -> asyncio.Task[None]:
        """The refresh under way, or a new one."""
        if self._refreshing is None or self._refreshing.done():
            self._generation += 1
            self._refreshing = asyncio.create_task(self._fetch_pages(), name="clip-feed")
            self._refreshing.add_done_callback(_retrieve)
        return self._refreshing

    async def _fetch_pages(self) -> None:
        try:
            await self._read_pages()
        except RejectedError as error:
            # `error: true` for a page says nothing about any one clip: not a reason to believe
            # every followed clip gone.
            self._failed = True
            raise UnavailableError(f"Rhombus refused a page of clips: {error}") from error
        except BaseException:
            self._failed = True
            raise
        self._failed = False

    async def _read_pages(self) -> None:
        wanted = set(self._followed)
        known = [created for created in self._followed.values() if created is not None]
        oldest = min(known) if len(known) == len(self._followed) else None
        token: str | None = None
        for _ in range(self.max_pages):
            page = await self._rhombus.get_clips_page(page_size=PAGE_SIZE, page_token=token)
            now = self._clock()
            final: set[str] = set()
            for clip in page.clips:
                if clip.uuid in self._followed:
                    before = self._snapshots.get(clip.uuid)
                    if clip.is_final and (before is None or not before.clip.is_final):
                        final.add(clip.uuid)
                    self._snapshots[clip.uuid] = _Snapshot(clip, now)
                    wanted.discard(clip.uuid)
            if final and self.on_final is not None:
                self.on_final(final)
            last = page.clips[-1].created_at_ms if page.clips else None
            # Newest first: past the oldest followed clip, later pages cannot hold any of them.
            past_oldest = oldest is not None and last is not None and last < oldest
            if not wanted or page.next_page_token is None or past_oldest:
                break
            token = page.next_page_token
        self._missed = wanted & self._followed.keys()


def _retrieve(task: asyncio.Task[None]) -> None:
    """Read a refresh's outcome, so an error nobody waited for is not reported as lost."""
    if not task.cancelled():
        task.exception()
