"""Following clips: one polling job per status message, from the first post to the last edit.

The tracker runs the jobs and their lifecycle (follow, poll, refresh, stop, resume, drain). What
an answer from Rhombus means is decided by `bot.progress`; the message is shown by
`bot.showing`; Slack is spoken to through `bot.slack_messages`.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from bot.clips import Clip, Ending
from bot.followed import Followed, dump_clip
from bot.handover import CHANNEL, Everything, Notice, ask_holder, notice
from bot.jobs import PollingJobs, Underway, in_slices
from bot.progress import Answer, Pacing, Rejected, Unreachable, judge, still_starting
from bot.rhombus import RateLimitedError, RejectedError, RhombusError
from bot.showing import Showing, ShowSettings
from bot.slack_messages import Sent
from bot.status_message import DEFAULT_CONSOLE_URL, render_status
from bot.store import DuplicateTrackingError, Tracking, TrackingState
from bot.write_behind import WriteBehind

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Collection, Mapping
    from contextlib import AbstractAsyncContextManager

    from apscheduler.schedulers.asyncio import AsyncIOScheduler

    from bot.delivery import Deliveries
    from bot.handover import Holder
    from bot.slack_messages import SlackMessages
    from bot.status_message import MadeFromSlack
    from bot.store import Store
    from bot.workspaces import Workspaces

logger = logging.getLogger(__name__)

NOT_CONNECTED = "Rhombus is not connected to this workspace"


@dataclass(frozen=True)
class AlreadyFollowing:
    """The clip is already followed in that channel, by this tracking."""

    tracking: Tracking


@dataclass(frozen=True)
class NotPosted:
    """Slack refused the status message; `error` is its error code. Nothing was kept."""

    error: str


@dataclass(frozen=True)
class TrackerSettings:
    """How clips are polled, and what the status messages link to."""

    pacing: Pacing = field(default_factory=Pacing)
    console_url: str = DEFAULT_CONSOLE_URL


class Tracker:
    """Owns the polling jobs; every status message goes through it."""

    def __init__(  # noqa: PLR0913
        self,
        *,
        store: Store,
        workspaces: Workspaces,
        messages: SlackMessages,
        scheduler: AsyncIOScheduler,
        settings: TrackerSettings,
        clock: Callable[[], float] = time.time,
        deliveries: Deliveries | None = None,
        made: Mapping[str, MadeFromSlack] | None = None,
        holder: Holder | None = None,
    ) -> None:
        self._store = store
        self._holder = holder or Everything()
        self._rows = WriteBehind(store)
        self._workspaces = workspaces
        self._messages = messages
        self._jobs = PollingJobs(scheduler, settings.pacing.interval, self.poll)
        self._settings = settings
        self._clock = clock
        # Clips made from Slack (`/clip new`), by clip id: their messages say so.
        self._made: Mapping[str, MadeFromSlack] = {} if made is None else made
        self._showing = Showing(
            store=store,
            workspaces=workspaces,
            messages=messages,
            settings=ShowSettings(
                give_up_after=settings.pacing.give_up_after, console_url=settings.console_url
            ),
            tracker=self,
            rows=self._rows,
            deliveries=deliveries,
            made=self._made,
            clock=clock,
        )
        # Every tracking with a polling job; its polls touch the database only on change.
        self._live: dict[str, Followed] = {}
        self._closing = False
        self._underway = Underway()
        # Called with a tracking whenever what its message shows changes (the App Home listens).
        self.watchers: list[Callable[[Tracking], None]] = []

    # --- Starting and stopping ------------------------------------------------------------------

    async def resume(
        self,
        settle: Callable[[], None] | None = None,
        *,
        teams: Callable[[str], bool] | None = None,
        posting_grace: float = 0.0,
        known: Callable[[Collection[str]], Awaitable[None]] | None = None,
    ) -> int:
        """Schedule a job for every unfinished tracking in the database; how many were resumed.

        `settle` is called once every tracking is loaded, before the first poll is scheduled.
        Only the workspaces `teams` accepts (default: all) are resumed, and only trackings not
        followed yet; a status message being posted for less than `posting_grace` seconds is
        left to whoever posts it (another replica). `known` is awaited with their clip ids
        before they are followed (to learn what their messages show besides the clip).
        """
        posted_before = self._clock() - posting_grace
        trackings = [
            tracking
            for tracking in await self._store.unfinished()
            if (teams is None or teams(tracking.team_id))
            and tracking.id not in self._live
            and (
                tracking.state != TrackingState.POSTING
                or (tracking.started_at <= posted_before and await self._showing.recover(tracking))
            )
        ]
        if known is not None and trackings:
            await known([tracking.clip_id for tracking in trackings])
        # Every clip is in the feed before the first poll, so the first refresh reads them all.
        async for _, tracking in in_slices(trackings):
            self._adopt(Followed.resume(tracking))
        if settle is not None:
            settle()
        await self._jobs.add_spread([tracking.id for tracking in trackings])
        if trackings or teams is None:
            logger.info("resumed %d tracking(s)", len(trackings))
        return len(trackings)

    def working(self) -> AbstractAsyncContextManager[None]:
        """Mark work under way (a poll, a listener posting), so shutdown can wait for it."""
        return self._underway.working()

    async def drain(self, seconds: float) -> None:
        """Wait (up to `seconds`) for work under way to finish, then stop sending edits.

        Edits still waiting for their turn are dropped: their state is in the database, and the
        next start edits the messages to it.
        """
        self._closing = True
        for organisation in self._workspaces.organisations():
            organisation.feed.close()  # polls waiting for a page refresh end now
        await self._underway.idle(seconds)
        await self._showing.close()

    # --- What the Slack listeners call ----------------------------------------------------------

    async def follow(  # noqa: PLR0913
        self,
        *,
        team_id: str,
        channel_id: str,
        thread_ts: str | None,
        clip_id: str,
        requester_id: str,
        clip: Clip,
    ) -> Tracking | AlreadyFollowing | NotPosted:
        """Post the status message for a clip and start following it."""
        now = self._clock()
        tracking = Tracking.posting(
            team_id=team_id,
            channel_id=channel_id,
            thread_ts=thread_ts,
            clip_id=clip_id,
            requester_id=requester_id,
            clip=dump_clip(clip),
            percent=clip.percent,
            now=now,
        )
        try:
            await self._store.add(tracking)
        except DuplicateTrackingError:
            existing = await self._store.find_open(team_id, channel_id, clip_id)
            if existing is None:  # finished between the insert and the lookup: try once more
                return await self.follow(
                    team_id=team_id,
                    channel_id=channel_id,
                    thread_ts=thread_ts,
                    clip_id=clip_id,
                    requester_id=requester_id,
                    clip=clip,
                )
            return AlreadyFollowing(existing)

        tracking.ending = clip.ending
        message = render_status(await self._showing.view(tracking, clip))
        try:
            outcome = await self._messages.post_status(tracking, message)
        except Exception:
            await self._store.delete(tracking.id)
            raise
        if not isinstance(outcome, Sent):
            await self._store.delete(tracking.id)
            return NotPosted(outcome.error)
        tracking.message_ts = outcome.ts
        tracking.fingerprint = message.fingerprint
        tracking.state = TrackingState.FOLLOWING
        if tracking.ending is not None:
            # Already final when asked: the status message itself is the answer.
            tracking.final_reply_sent = True
            tracking.state = TrackingState.FINISHED
            tracking.finished_at = now
        if tracking.state == TrackingState.FOLLOWING and not self._holder.holds(team_id):
            # Another replica follows this workspace: it polls from here on.
            await self._store.notify(CHANNEL, notice(Notice.FOLLOW, tracking.id), tracking=tracking)
        else:
            await self._store.save(tracking)
        logger.info(
            "following clip %s in %s (tracking %s, ts %s)",
            clip_id,
            channel_id,
            tracking.id,
            tracking.message_ts,
            extra=tracking.log_context,
        )
        if tracking.state == TrackingState.FOLLOWING and self._holder.holds(team_id):
            self._adopt(Followed.of(tracking, clip))
            self._jobs.add(tracking.id, after=self._settings.pacing.interval)
        self.changed(tracking)
        return tracking

    async def permalink(self, tracking: Tracking) -> str | None:
        """A link to the tracking's status message, if Slack gives one."""
        return await self._messages.permalink(tracking)

    async def find_open(self, team_id: str, channel_id: str, clip_id: str) -> Tracking | None:
        """The live tracking of that clip in that channel, if any."""
        return await self._store.find_open(team_id, channel_id, clip_id)

    async def tracking_for_message(self, channel_id: str, message_ts: str) -> Tracking | None:
        """The tracking that owns a status message, if the bot follows it."""
        return await self._store.find_by_message(channel_id, message_ts)

    async def refresh(self, tracking_id: str) -> bool:
        """Poll now instead of at the next interval; False when the clip is no longer followed."""
        live = self._live.get(tracking_id)
        if live is None:
            return await ask_holder(self._store, self._holder, tracking_id, Notice.REFRESH)
        if live.tracking.state != TrackingState.FOLLOWING:
            return False
        live.progress = live.progress._replace(stalls=0)
        live.refresh_wanted = True
        self._jobs.add(tracking_id, after=0.0)
        return True

    async def stop(self, tracking_id: str, user_id: str, ending: Ending = Ending.STOPPED) -> bool:
        """Stop following at someone's request; False when it had already stopped."""
        live = self._live.get(tracking_id)
        if live is None:
            return await ask_holder(
                self._store, self._holder, tracking_id, Notice.STOP, user_id=user_id, ending=ending
            )
        async with self.working(), live.lock:
            tracking = live.tracking
            if tracking.state != TrackingState.FOLLOWING:
                return False
            tracking.ending = ending
            tracking.stopped_by = user_id
            live.progress = live.progress._replace(changed_at=self._clock())
            await self._showing.deliver(live)
        return True

    def current(self, tracking: Tracking) -> Tracking:
        """The tracking as its polls know it now; a stored row can lag one write batch behind."""
        live = self._live.get(tracking.id)
        return live.tracking if live is not None else tracking

    async def follow_again(self, tracking: Tracking) -> bool:
        """Follow a finished tracking's clip again in the same message (a retried splice).

        False when it is still followed, or its clip is followed in that channel by another.
        """
        if tracking.id in self._live or tracking.state != TrackingState.FINISHED:
            return False
        if tracking.ending is not None and not tracking.ending.is_shown:
            return False
        now = self._clock()
        tracking.state = TrackingState.FOLLOWING
        tracking.ending = None
        tracking.stopped_by = None
        tracking.final_reply_sent = False
        tracking.finished_at = None
        tracking.notice = None
        tracking.fingerprint = None  # the next poll edits the message to the present
        tracking.changed_at = tracking.progress_at = tracking.reached_at = now
        if not await self._store.reopen(tracking):
            return False
        if self._holder.holds(tracking.team_id):
            self.take_over(tracking, after=0.0)
        else:  # the replica following the workspace polls it, told at once
            await self._store.notify(CHANNEL, notice(Notice.RETRY, tracking.id))
        logger.info("following tracking %s again", tracking.id, extra=tracking.log_context)
        return True

    def is_following(self, tracking_id: str) -> bool:
        """Whether a polling job exists for the tracking."""
        return tracking_id in self._jobs

    @property
    def live_count(self) -> int:
        """How many trackings this process follows now."""
        return len(self._live)

    def poll_now(self, clip_ids: set[str]) -> None:
        """Poll the trackings of these clips now rather than at their turn (they just ended)."""
        for live in self._live.values():
            # A poll under way holds the lock; APScheduler would skip a second run with a warning.
            if live.tracking.clip_id in clip_ids and not live.lock.locked():
                self._jobs.delay(live.tracking.id, 0.0)

    def take_over(self, tracking: Tracking, *, after: float) -> None:
        """Follow a stored tracking here from now on, its first poll `after` seconds from now."""
        self._adopt(Followed.resume(tracking))
        self._jobs.add(tracking.id, after=after)

    def follows(self, live: Followed) -> bool:
        """Whether this process still follows the tracking through `live` and may call Slack.

        False once it was let go (its shard lost or given back) while a poll or an edit held
        it: whoever holds its workspace now shows it.
        """
        tracking = live.tracking
        return self._live.get(tracking.id) is live and self._holder.holds(tracking.team_id)

    def hold_edits(self, team_ids: Collection[str], seconds: float) -> None:
        """Hold the edits and replies of workspaces taken over from another replica.

        None for `seconds` (polls go on), then edits at the steady rate, leaving room for the
        other replica's last minute.
        """
        for team_id in team_ids:
            self._messages.edits(team_id).taken_over(seconds)

    def followed_in(self, teams: Callable[[str], bool]) -> list[Followed]:
        """The trackings followed here of the workspaces `teams` accepts."""
        return [live for live in self._live.values() if teams(live.tracking.team_id)]

    async def end_team(self, team_id: str, ending: Ending) -> int:
        """End every open tracking of the workspace (its install is gone); how many were open.

        Stored first, then forgotten here; a replica told of it later finds its rows ended
        and only forgets what it followed.
        """
        now = self._clock()
        ended = await self._store.finish_team(team_id, ending, now)
        for live in self.followed_in(lambda team: team == team_id):
            live.tracking.state = TrackingState.FINISHED
            live.tracking.ending = ending
            live.tracking.finished_at = now
            self.finished(live.tracking.id)
        return len(ended)

    @property
    def rows(self) -> WriteBehind:
        """The rows waiting to be written."""
        return self._rows

    # --- The job --------------------------------------------------------------------------------

    async def poll(self, tracking_id: str) -> None:
        """One round for one tracking: ask Rhombus, edit the message if what it shows changed."""
        live = self._live.get(tracking_id)
        if live is None:
            self.finished(tracking_id)
            return
        async with self.working(), live.lock:
            tracking = live.tracking
            if tracking.state != TrackingState.FOLLOWING:
                return
            if tracking.ending is None:  # else its end is still to be shown
                try:
                    answer = await self._ask(live)
                except asyncio.CancelledError:
                    if self._closing:
                        return  # shutting down: the next start polls again
                    raise
                if answer is None:
                    return  # its first page is on its way
                made = self._made.get(tracking.clip_id)
                if made is not None and still_starting(
                    answer, made_at=made.made_at, now=self._clock(), retried_at=made.retried_at
                ):
                    return
                before = live.progress
                verdict = judge(
                    before,
                    answer,
                    now=self._clock(),
                    pacing=self._settings.pacing,
                    draw=random.random(),  # noqa: S311  # spreading load, not cryptography
                )
                live.progress = verdict.progress
                if verdict.delay is not None:
                    self._jobs.delay(tracking_id, verdict.delay)
                if not verdict.changed:
                    return  # nothing the message shows has changed: no render, no write
                tracking.ending = verdict.ending
            await self._showing.deliver(live)

    async def _ask(self, live: Followed) -> Answer | None:
        """What Rhombus says of the clip now; None while its first page is on its way."""
        tracking = live.tracking
        wanted, live.refresh_wanted = live.refresh_wanted, False
        organisation = self._workspaces.organisation(tracking.team_id)
        if organisation is None:  # disconnected a moment ago: its trackings are being stopped
            return Unreachable(NOT_CONNECTED)
        try:
            if wanted:
                return await organisation.feed.fresh(tracking.clip_id)
            return await organisation.feed.poll(tracking.clip_id)
        except RejectedError as error:
            return Rejected(str(error))
        except RhombusError as error:
            logger.warning(
                "tracking %s: Rhombus call failed: %s",
                tracking.id,
                error,
                extra=tracking.log_context,
            )
            wait = error.retry_after if isinstance(error, RateLimitedError) else 0.0
            return Unreachable(str(error), wait)

    def live(self, tracking_id: str) -> Followed | None:
        """The tracking in memory, while it is followed."""
        return self._live.get(tracking_id)

    def changed(self, tracking: Tracking) -> None:
        """Tell the watchers that what the tracking's message shows changed."""
        for watcher in self.watchers:
            watcher(tracking)

    # --- Scheduling -----------------------------------------------------------------------------

    def _adopt(self, followed: Followed) -> None:
        """Keep a following tracking in memory, and its clip in the feed."""
        tracking, clip = followed.tracking, followed.progress.shown
        if tracking.id not in self._live:
            self._live[tracking.id] = followed
            if (organisation := self._workspaces.organisation(tracking.team_id)) is not None:
                organisation.feed.follow(tracking.clip_id, clip.created_at_ms if clip else None)

    def finished(self, tracking_id: str) -> None:
        """Stop polling the tracking and forget it: it needs nothing more."""
        self._jobs.remove(tracking_id)
        self._messages.forget(tracking_id)
        if (live := self._live.pop(tracking_id, None)) is not None and (
            organisation := self._workspaces.organisation(live.tracking.team_id)
        ) is not None:
            organisation.feed.unfollow(live.tracking.clip_id)
