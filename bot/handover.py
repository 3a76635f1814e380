"""Which workspaces this process follows, and the notices that hand work to their holder.

With several replicas on one PostgreSQL database each workspace's clips are followed by exactly
one of them (`bot.shards`); any replica may take a `/clip`, a Refresh or a Stop. It writes the
row and sends a notice in the same transaction, and the holder acts on it. A notice only wakes
the holder up: it reads the row again, and rescans its workspaces now and then, so a notice
sent while nobody listened is not missed for long.

The holder does all of a workspace's work that outlives a request: polling and editing its
status messages, keeping its link unfurls up to date, and delivering its finished clips' videos.
It takes all of it up when it gains the workspace's shard and lets all of it go when it loses it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from enum import StrEnum
from typing import TYPE_CHECKING, Protocol

from bot.clips import Ending
from bot.store import TrackingState

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Collection

    from bot.delivery import Deliveries
    from bot.store import Store
    from bot.tracker import Tracker
    from bot.unfurls import Unfurls

logger = logging.getLogger(__name__)

# The PostgreSQL NOTIFY channel the notices go through.
CHANNEL = "clipbot_trackings"
# How long letting a workspace go to another replica waits for polls and edits under way.
LET_GO_SECONDS = 3.0
# A status message still being posted by another replica is left to it for this long.
POSTING_GRACE_SECONDS = 60.0
# A workspace taken over sends no edit or reply for this long: an edit its last holder sent
# just before losing its lock (a cut connection frees the lock at once) may still be on its way,
# and Slack applies an edit when it answers. Slack answers within a second or so.
FENCE_SECONDS = 2.0


class Notice(StrEnum):
    """What the holder is asked to do with a tracking."""

    FOLLOW = "follow"  # start polling it (its message was posted elsewhere)
    REFRESH = "refresh"  # poll now
    STOP = "stop"  # show it stopped (the row says by whom)
    UNFURL = "unfurl"  # keep that link unfurl up to date (the id is the unfurl's)
    RETRY = "retry"  # follow it again: Rhombus is making its clip again (Retry)


def notice(kind: Notice, tracking_id: str) -> str:
    """The NOTIFY payload asking for `kind` on that tracking."""
    return f"{kind}:{tracking_id}"


def read_notice(payload: str) -> tuple[Notice, str] | None:
    """What a NOTIFY payload asks for, or None when it is not one of ours."""
    kind, _, tracking_id = payload.partition(":")
    if kind not in Notice.__members__.values() or not tracking_id:
        return None
    return Notice(kind), tracking_id


class Holder(Protocol):
    """Knows whether this process follows a workspace's clips now."""

    def holds(self, team_id: str) -> bool:
        """Whether this process follows that workspace's clips now."""
        ...


async def ask_holder(  # noqa: PLR0913  # what the notice carries
    store: Store,
    holder: Holder,
    tracking_id: str,
    kind: Notice,
    *,
    user_id: str = "",
    ending: Ending = Ending.STOPPED,
) -> bool:
    """Hand a Refresh or Stop to the replica following the tracking; False if nobody does."""
    row = await store.get(tracking_id)
    if (
        row is None
        or row.state != TrackingState.FOLLOWING
        or row.ending is not None
        or holder.holds(row.team_id)  # ours, yet not followed: it has ended
    ):
        return False
    if kind is Notice.STOP:
        row.ending, row.stopped_by = ending, user_id
        await store.notify(CHANNEL, notice(kind, tracking_id), tracking=row)
    else:
        await store.notify(CHANNEL, notice(kind, tracking_id))
    return True


class Everything:
    """One process follows every workspace: SQLite, or no replicas."""

    def holds(self, team_id: str) -> bool:  # noqa: ARG002
        """Always."""
        return True


class Handover:
    """Work handed to this replica (shards gained, notices) and from it (shards let go)."""

    def __init__(  # noqa: PLR0913  # each part that works per workspace
        self,
        tracker: Tracker,
        store: Store,
        holder: Holder,
        *,
        interval: float,
        unfurls: Unfurls | None = None,
        deliveries: Deliveries | None = None,
        known: Callable[[Collection[str]], Awaitable[None]] | None = None,
        retried: Callable[[str], None] | None = None,
        settle_made: Callable[..., Awaitable[None]] | None = None,
    ) -> None:
        self._tracker = tracker
        self._store = store
        self._holder = holder
        self._interval = interval
        self._unfurls = unfurls
        self._deliveries = deliveries
        # Learns what a tracking's message shows besides its clip ("Made from Slack by …").
        self._known = known
        # Told of a clip made again (Retry on another replica): Rhombus may lag a moment.
        self._retried = retried
        # Settles clips asked for from Slack that a crashed replica left unposted.
        self._settle_made = settle_made

    async def take(self, teams: Callable[[str], bool], *, again: bool = False) -> int:
        """Follow those workspaces' trackings, unfurls and deliveries here; trackings resumed.

        `again`: a rescan of workspaces already held, for work a lost notice did not bring;
        deliveries are only created by the holder, so they are left as they are.
        """
        resumed = await self._tracker.resume(
            teams=teams, posting_grace=POSTING_GRACE_SECONDS, known=self._known
        )
        if self._unfurls is not None:
            await self._unfurls.resume(teams)
        if not again:
            taken = {live.tracking.team_id for live in self._tracker.followed_in(teams)}
            if self._unfurls is not None:
                taken |= self._unfurls.teams_in(teams)
            self._tracker.hold_edits(taken, FENCE_SECONDS)
        if self._deliveries is not None and not again:
            await self._deliveries.resume(teams)
        if self._settle_made is not None:
            await self._settle_made(teams, made_before=time.time() - POSTING_GRACE_SECONDS)
        return resumed

    async def heed(self, payload: str) -> None:
        """Act on a notice from another replica: follow a tracking, refresh it, or stop it."""
        read = read_notice(payload)
        if read is None:
            return
        kind, tracking_id = read
        if kind is Notice.UNFURL:
            if self._unfurls is not None:
                await self._unfurls.heed(tracking_id)
            return
        row = await self._store.get(tracking_id)
        if (
            row is None
            or row.state != TrackingState.FOLLOWING
            or not self._holder.holds(row.team_id)
        ):
            return  # finished meanwhile, or another replica's: the row is the truth
        if self._tracker.live(tracking_id) is None:
            if self._known is not None:
                await self._known([row.clip_id])
            if kind is Notice.RETRY and self._retried is not None:
                self._retried(row.clip_id)
            # Its ending, if it was stopped, is shown at its first poll.
            self._tracker.take_over(row, after=self._interval if kind is Notice.FOLLOW else 0.0)
        elif kind is Notice.REFRESH:
            await self._tracker.refresh(tracking_id)
        elif kind is Notice.STOP and row.ending is not None:
            await self._tracker.stop(tracking_id, row.stopped_by or "", row.ending)

    async def let_go(self, teams: Callable[[str], bool], *, orderly: bool) -> int:
        """Stop following those workspaces' trackings here at once; how many there were.

        Their unfurls stop being updated and their deliveries under way stop (each resumes
        from its row where the workspace is followed next). `orderly`: another replica takes
        them only after this returns, so polls and edits under way may finish (up to a few
        seconds) and every row is written first.
        """
        if self._unfurls is not None:
            self._unfurls.let_go(teams)
        gone = self._tracker.followed_in(teams)
        for live in gone:
            self._tracker.finished(live.tracking.id)
        if orderly:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(LET_GO_SECONDS):
                    for live in gone:
                        async with live.lock:
                            pass
            await self._tracker.rows.flush()
        else:
            # Cut off: whoever holds them next reads the table; older news must not overwrite it.
            self._tracker.rows.drop(live.tracking.id for live in gone)
        if self._deliveries is not None:
            await self._deliveries.let_go(teams)
        if gone:
            logger.info("stopped following %d tracking(s) here", len(gone))
        return len(gone)
