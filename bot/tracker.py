"""Following clips: one scheduled job per status message polls Rhombus and edits the message."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from apscheduler.jobstores.base import JobLookupError
from apscheduler.triggers.interval import IntervalTrigger
from slack_sdk.errors import SlackApiError

from bot.blocks import Ending, RenderedMessage, StatusView, render_final_reply, render_status
from bot.clips import Clip, ClipStatus
from bot.edits import EditQueue
from bot.rhombus import RateLimitedError, RejectedError, RhombusError
from bot.store import DuplicateTrackingError, Store, StoreError, Tracking, TrackingState

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

    from apscheduler.schedulers.asyncio import AsyncIOScheduler
    from slack_sdk.web.async_client import AsyncWebClient
    from slack_sdk.web.async_slack_response import AsyncSlackResponse

    from bot.feed import ClipFeed
    from bot.rhombus import RhombusClient

logger = logging.getLogger(__name__)

MAX_BACKOFF_SECONDS = 300.0
MAX_SLACK_BACKOFF_SECONDS = 60.0
# Each poll without progress waits this much longer than the one before (up to the maximum).
STALL_FACTOR = 1.5
# Answers of `error: true` in a row, while following, before the clip counts as gone.
REJECTIONS_BEFORE_NOT_FOUND = 3
# A live message is edited when the bar fills one more of its ten segments, not at every percent:
# a workspace's edits are few (Slack allows about 50 a minute), and many messages share them.
EDIT_STEP_PERCENT = 10
# A Retry-After this short (from Slack or Rhombus) is waited out while a person waits for a new
# status message, rather than telling them to try again; a status message is tried at most
# POST_ATTEMPTS times.
SHORT_WAIT_SECONDS = 3.0
POST_ATTEMPTS = 3
# Resumed trackings are loaded and scheduled in slices, letting the loop run (and the first polls
# start) in between.
RESUME_SLICE = 200
# What polls see is written to the database in batches, at most this long after it was seen;
# endings, and anything a restart must not repeat, are written at once.
WRITE_BEHIND_SECONDS = 0.5
# After a failed batch write, the rows are kept and written again this much later.
WRITE_RETRY_SECONDS = 5.0
# Message metadata marking the bot's status messages, so a restart can find one it lost.
METADATA_EVENT = "rhombus_clip_followed"
# How far Slack's clock may be ahead of ours when looking for a just-posted message.
CLOCK_SKEW_SECONDS = 120.0
UNREACHABLE_NOTICE = "Rhombus unreachable, retrying"
MESSAGE_GONE = "message_gone"
UNINSTALLED = "uninstalled"

# chat.update / chat.postMessage errors after which the message can never be edited again.
MESSAGE_GONE_ERRORS = frozenset(
    {
        "message_not_found",
        "cant_update_message",
        "edit_window_closed",
        "channel_not_found",
        "is_inactive",
        "is_archived",
        "not_in_channel",
    }
)
# Errors that mean the app's install in that workspace is gone or broken.
INSTALL_GONE_ERRORS = frozenset(
    {"token_revoked", "account_inactive", "invalid_auth", "not_authed", "missing_scope"}
)


class PostError(Exception):
    """The status message could not be posted; `error` is Slack's error code."""

    def __init__(self, error: str) -> None:
        super().__init__(error)
        self.error = error


@dataclass(frozen=True)
class AlreadyFollowing:
    """The clip is already followed in that channel, by this tracking."""

    tracking: Tracking


@dataclass(eq=False)
class _Live:
    """A followed tracking in memory, where its polls read and write it.

    The row is the same object the database holds a copy of; it is written whenever what the
    message shows changes, and a restart resumes from it. `seen` and `percent` are the clip as
    last observed, which may be ahead of what the message shows (`shown`).
    """

    tracking: Tracking
    shown: Clip | None
    seen: Clip | None
    percent: int | None
    # Whether the message must be brought up to date whatever the next poll finds (what it shows
    # is not known, e.g. after a crash); cleared once an edit is on its way.
    stale: bool = False
    latest: bool = False  # the next poll asks Rhombus itself: someone pressed Refresh
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    failures: int = 0  # failed polls in a row, for backoff
    rejections: int = 0  # `error: true` answers in a row
    stalls: int = 0  # polls in a row without progress: stalled clips are polled less often


@dataclass(frozen=True)
class TrackerSettings:
    """How often to poll and when to give up."""

    poll_interval: float = 5.0
    edits_per_minute: float = 40.0
    max_poll_interval: float = 60.0
    give_up_after: float = 30 * 60.0
    console_url: str = "https://console.rhombussystems.com"


class Tracker:
    """Owns the polling jobs and every status message edit."""

    def __init__(  # noqa: PLR0913
        self,
        *,
        store: Store,
        rhombus: RhombusClient,
        feed: ClipFeed,
        slack: AsyncWebClient,
        scheduler: AsyncIOScheduler,
        settings: TrackerSettings,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._rhombus = rhombus
        self._feed = feed
        self._slack = slack
        self._scheduler = scheduler
        self._settings = settings
        self._clock = clock
        # Every tracking with a polling job; its polls touch the database only on change.
        self._live: dict[str, _Live] = {}
        self._unsaved: dict[str, Tracking] = {}  # rows to write in the next batch
        self._writer: asyncio.Task[None] | None = None
        self._closing = False
        # Every edit of a workspace's messages goes through that workspace's queue and budget.
        self._edit_queues: dict[str, EditQueue] = {}
        # Consecutive transient Slack failures per workspace, for backoff.
        self._slack_failures: dict[str, int] = {}
        self._busy = 0
        self._idle = asyncio.Event()
        self._idle.set()

    # --- Starting and stopping ------------------------------------------------------------------

    async def resume(self, settle: Callable[[], None] | None = None) -> int:
        """Schedule a job for every unfinished tracking in the database; how many were resumed.

        `settle` is called once every tracking is loaded, before the first poll is scheduled.
        """
        trackings = [
            tracking
            for tracking in await self._store.unfinished()
            if tracking.state != TrackingState.POSTING or await self._recover(tracking)
        ]
        # Every clip is in the feed before the first poll, so the first refresh reads them all.
        async for _, tracking in _in_slices(trackings):
            self._adopt(tracking, _load(tracking.clip))
        if settle is not None:
            settle()
        # Spread the first polls evenly over one interval from now, so a restart is not a burst
        # of calls; the loop runs between slices, so polls start on time while the rest is added.
        start = datetime.now(UTC)
        step = self._settings.poll_interval / max(1, len(trackings))
        async for index, tracking in _in_slices(trackings):
            self._schedule(tracking.id, start + timedelta(seconds=step * index))
        logger.info("resumed %d tracking(s)", len(trackings))
        return len(trackings)

    @contextlib.asynccontextmanager
    async def working(self) -> AsyncIterator[None]:
        """Mark work under way (a poll, a listener posting), so shutdown can wait for it."""
        self._busy += 1
        self._idle.clear()
        try:
            yield
        finally:
            self._busy -= 1
            if self._busy == 0:
                self._idle.set()

    async def _recover(self, tracking: Tracking) -> bool:
        """Adopt the status message a crashed process posted but did not record; False if none."""
        # The process died between chat.postMessage and saving its ts. The message carries the
        # tracking id in its metadata, so the channel (or thread) itself says whether it exists.
        oldest = f"{tracking.started_at - CLOCK_SKEW_SECONDS:.6f}"
        try:
            if tracking.thread_ts:
                answer = await self._slack.conversations_replies(
                    channel=tracking.channel_id,
                    ts=tracking.thread_ts,
                    oldest=oldest,
                    include_all_metadata=True,
                    limit=200,
                )
            else:
                answer = await self._slack.conversations_history(
                    channel=tracking.channel_id,
                    oldest=oldest,
                    include_all_metadata=True,
                    limit=200,
                )
        except SlackApiError as error:
            logger.warning(
                "cannot check whether tracking %s was posted (%s); forgetting it",
                tracking.id,
                _slack_error(error),
                extra=_context(tracking),
            )
            await self._store.delete(tracking.id)
            return False
        for message in answer.get("messages") or []:
            metadata = message.get("metadata") or {}
            payload = metadata.get("event_payload") or {}
            if (
                metadata.get("event_type") == METADATA_EVENT
                and payload.get("tracking_id") == tracking.id
            ):
                tracking.message_ts = str(message["ts"])
                tracking.state = TrackingState.FOLLOWING
                tracking.fingerprint = None  # unknown: the next round edits it to the present
                await self._store.save(tracking)
                logger.info(
                    "recovered tracking %s: its status message was posted",
                    tracking.id,
                    extra=_context(tracking),
                )
                return True
        logger.info(
            "tracking %s was never posted; forgetting it", tracking.id, extra=_context(tracking)
        )
        await self._store.delete(tracking.id)
        return False

    async def drain(self, seconds: float) -> None:
        """Wait (up to `seconds`) for work under way to finish, then stop sending edits.

        Edits still waiting for their turn are dropped: their state is in the database, and the
        next start edits the messages to it.
        """
        self._closing = True
        self._feed.close()  # polls waiting for a page refresh end now
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), seconds)
        for queue in self._edit_queues.values():
            await queue.close()
        if self._writer is not None:
            self._writer.cancel()
        await self._write_unsaved(retry=False)

    # --- What the Slack listeners call ----------------------------------------------------------

    async def open(  # noqa: PLR0913
        self,
        *,
        team_id: str,
        channel_id: str,
        thread_ts: str | None,
        clip_id: str,
        requester_id: str,
        clip: Clip,
    ) -> Tracking | AlreadyFollowing:
        """Post the status message for a clip and start following it."""
        now = self._clock()
        tracking = Tracking(
            id=Tracking.new_id(),
            team_id=team_id,
            channel_id=channel_id,
            thread_ts=thread_ts,
            clip_id=clip_id,
            requester_id=requester_id,
            state=TrackingState.POSTING,
            clip=_dump(clip),
            percent=clip.percent,
            final_reply_sent=False,
            started_at=now,
            changed_at=now,
            progress_at=now,
            reached_at=now,
        )
        try:
            await self._store.add(tracking)
        except DuplicateTrackingError:
            existing = await self._store.find_open(team_id, channel_id, clip_id)
            if existing is None:  # finished between the insert and the lookup: try once more
                return await self.open(
                    team_id=team_id,
                    channel_id=channel_id,
                    thread_ts=thread_ts,
                    clip_id=clip_id,
                    requester_id=requester_id,
                    clip=clip,
                )
            return AlreadyFollowing(existing)

        ending = _ending_of(clip)
        tracking.ending = ending
        message = render_status(self._view(tracking, clip, await self._camera_names(clip)))
        try:
            answer = await self._post_status(tracking, message)
        except SlackApiError as error:
            await self._store.delete(tracking.id)
            raise PostError(_slack_error(error)) from error
        except Exception:
            await self._store.delete(tracking.id)
            raise
        tracking.message_ts = str(answer["ts"])
        tracking.fingerprint = message.fingerprint
        tracking.state = TrackingState.FOLLOWING
        if ending is not None:
            # Already final when asked: the status message itself is the answer.
            tracking.final_reply_sent = True
            tracking.state = TrackingState.FINISHED
            tracking.finished_at = now
        await self._store.save(tracking)
        logger.info(
            "following clip %s in %s (tracking %s, ts %s)",
            clip_id,
            channel_id,
            tracking.id,
            tracking.message_ts,
            extra=_context(tracking),
        )
        if tracking.state == TrackingState.FOLLOWING:
            self._adopt(tracking, clip)
            self._schedule(tracking.id, _after(self._settings.poll_interval))
        return tracking

    async def _post_status(
        self, tracking: Tracking, message: RenderedMessage
    ) -> AsyncSlackResponse:
        """Post the status message, waiting out a short Retry-After: the person is waiting anyway.

        (Several clips asked for at once are several messages in one channel at once.)
        """
        attempt = 0
        while True:
            attempt += 1
            try:
                return await self._slack.chat_postMessage(
                    channel=tracking.channel_id,
                    thread_ts=tracking.thread_ts,
                    text=message.text,
                    blocks=message.blocks,
                    unfurl_links=False,
                    unfurl_media=False,
                    metadata={
                        "event_type": METADATA_EVENT,
                        "event_payload": {"tracking_id": tracking.id, "clip_id": tracking.clip_id},
                    },
                )
            except SlackApiError as error:
                # Only a 429 surely posted nothing; anything else could duplicate the message.
                wait = _retry_after(error)
                if (
                    _slack_error(error) != "ratelimited"
                    or wait > SHORT_WAIT_SECONDS
                    or attempt == POST_ATTEMPTS
                ):
                    raise
                logger.info(
                    "posting clip %s: Slack asked to wait %.0f s; waiting",
                    tracking.clip_id,
                    wait,
                    extra=_context(tracking),
                )
                await asyncio.sleep(wait)

    async def permalink(self, tracking: Tracking) -> str | None:
        """A link to the tracking's status message, if Slack gives one."""
        if tracking.message_ts is None:
            return None
        try:
            answer = await self._slack.chat_getPermalink(
                channel=tracking.channel_id, message_ts=tracking.message_ts
            )
        except SlackApiError:
            return None
        permalink = answer.get("permalink")
        return permalink if isinstance(permalink, str) else None

    async def find_open(self, team_id: str, channel_id: str, clip_id: str) -> Tracking | None:
        """The live tracking of that clip in that channel, if any."""
        return await self._store.find_open(team_id, channel_id, clip_id)

    async def tracking_for_message(self, channel_id: str, message_ts: str) -> Tracking | None:
        """The tracking that owns a status message, if the bot follows it."""
        return await self._store.find_by_message(channel_id, message_ts)

    async def refresh(self, tracking_id: str) -> bool:
        """Poll now instead of at the next interval; False when the clip is no longer followed."""
        live = self._live.get(tracking_id)
        if live is None or live.tracking.state != TrackingState.FOLLOWING:
            return False
        live.stalls = 0
        live.latest = True
        self._schedule(tracking_id, _after(0.0))
        return True

    def poll_now(self, clip_ids: set[str]) -> None:
        """Poll the trackings of these clips now rather than at their turn (they just ended)."""
        for live in self._live.values():
            # A poll under way holds the lock; APScheduler would skip a second run with a warning.
            if live.tracking.clip_id in clip_ids and not live.lock.locked():
                self._reschedule(live.tracking.id, 0.0)

    async def stop(self, tracking_id: str, user_id: str) -> bool:
        """Stop following at someone's request; False when it had already stopped."""
        live = self._live.get(tracking_id)
        if live is None:
            return False
        async with self.working(), live.lock:
            tracking = live.tracking
            if tracking.state != TrackingState.FOLLOWING:
                return False
            tracking.ending = Ending.STOPPED
            tracking.stopped_by = user_id
            tracking.changed_at = self._clock()
            await self._deliver(live)
        return True

    # --- The job --------------------------------------------------------------------------------

    async def poll(self, tracking_id: str) -> None:
        """One round for one tracking: ask Rhombus, edit the message if what it shows changed."""
        live = self._live.get(tracking_id)
        if live is None:
            self._unschedule(tracking_id)
            return
        async with self.working(), live.lock:
            if live.tracking.state != TrackingState.FOLLOWING:
                return
            try:
                if live.tracking.ending is None and not await self._observe(live):
                    return  # nothing the message shows has changed: no render, no write
            except asyncio.CancelledError:
                if self._closing:
                    return  # shutting down: the next start polls again
                raise
            await self._deliver(live)

    async def _observe(self, live: _Live) -> bool:
        """Ask Rhombus for the clip and fold the answer in; whether the message must change."""
        now = self._clock()
        latest, live.latest = live.latest, False
        try:
            if latest:
                clip: Clip | None = await self._feed.fetch(live.tracking.clip_id)
            else:
                clip = await self._feed.poll(live.tracking.clip_id)
        except RejectedError as error:
            return self._rejected(live, error, now)
        except RhombusError as error:
            return self._unreachable(live, error, now)
        if clip is None:
            return False  # its first page is on its way
        return self._fold(live, clip, now)

    def _rejected(self, live: _Live, error: RejectedError, now: float) -> bool:
        """Rhombus answered `error: true`; whether the message must change."""
        # A clip seen a moment ago that Rhombus now refuses is most likely deleted, but Rhombus
        # also answers `error: true` for passing trouble: believe it a few times over.
        tracking = live.tracking
        self._back_off(live, error)
        live.rejections += 1
        if live.rejections < REJECTIONS_BEFORE_NOT_FOUND:
            return _set_notice(tracking, f"Rhombus answered: {error}; retrying"[:500])
        tracking.ending = Ending.NOT_FOUND
        tracking.notice = str(error)[:500]
        tracking.changed_at = now
        return True

    def _unreachable(self, live: _Live, error: RhombusError, now: float) -> bool:
        """Rhombus could not be asked; whether the message must change."""
        tracking = live.tracking
        logger.warning(
            "tracking %s: Rhombus call failed: %s", tracking.id, error, extra=_context(tracking)
        )
        self._back_off(live, error)
        changed = _set_notice(tracking, UNREACHABLE_NOTICE)
        if now - (tracking.reached_at or tracking.started_at) > self._settings.give_up_after:
            tracking.ending = Ending.UNREACHABLE
            tracking.changed_at = now
            return True
        return changed

    def _fold(self, live: _Live, clip: Clip, now: float) -> bool:
        """Take in Rhombus's answer; whether the message must change."""
        tracking = live.tracking
        live.failures = live.rejections = 0
        tracking.reached_at = now
        changed = _set_notice(tracking, None)
        seen, percent = live.seen, clip.percent
        if (
            seen is not None
            and percent is not None
            and live.percent is not None
            and seen.status == clip.status
            and seen.current_operation == clip.current_operation
        ):
            # Within one operation the bar only moves forward, whatever Rhombus reports.
            percent = max(percent, live.percent)
        progressed = seen is None or _progress_key(seen, live.percent) != _progress_key(
            clip, percent
        )
        if progressed:
            tracking.progress_at = now
        self._pace(live, progressed=progressed)
        live.seen, live.percent = clip, percent
        ending = _ending_of(clip)
        if ending is None and now - tracking.progress_at > self._settings.give_up_after:
            ending = Ending.GAVE_UP
        shown = live.shown
        if not (
            changed
            or ending is not None
            or live.stale
            or shown is None
            or _step(percent) != _step(tracking.percent)
            or not _same_besides_progress(shown, clip)
        ):
            return False
        live.shown = clip
        tracking.clip = _dump(clip)
        tracking.percent = percent
        tracking.ending = ending
        tracking.changed_at = now
        return True

    async def _deliver(self, live: _Live) -> None:
        """Bring the Slack message up to date; finish the tracking once its end is shown."""
        tracking, clip = live.tracking, live.shown
        live.stale = False
        message = render_status(self._view(tracking, clip, await self._camera_names(clip)))
        # What was seen is kept, whatever becomes of the edit; an ending at once.
        if tracking.ending is None:
            self._save_later(tracking)
        else:
            await self._store.save(tracking)
        if message.fingerprint != tracking.fingerprint:
            # Through the workspace's edit budget; it finishes the tracking once the end is shown.
            final = tracking.ending is not None
            self._edits(tracking.team_id).submit(
                tracking.id,
                functools.partial(self._send_edit, tracking.id, message, final=final),
                final=final,
            )
        elif tracking.ending is not None:
            await self._finish(live)

    async def _send_edit(
        self, tracking_id: str, message: RenderedMessage, *, final: bool
    ) -> float | None:
        """Edit the message (from the workspace's queue); seconds to pause the workspace, if any."""
        live = self._live.get(tracking_id)
        if live is None:
            return None
        async with self.working(), live.lock:
            tracking = live.tracking
            if tracking.state != TrackingState.FOLLOWING:
                return None
            try:
                await self._slack.chat_update(
                    channel=tracking.channel_id,
                    ts=tracking.message_ts or "",
                    text=message.text,
                    blocks=message.blocks,
                )
            except SlackApiError as error:
                return await self._slack_failed(tracking, error, "chat.update")
            self._slack_failures.pop(tracking.team_id, None)
            tracking.fingerprint = message.fingerprint
            # Only the edit that shows the end finishes; an older one still in flight does not.
            if final and tracking.ending is not None:
                await self._finish(live)
            else:
                self._save_later(tracking)
        return None

    async def _finish(self, live: _Live) -> None:
        """The end is shown: announce it in the thread (at most once) and stop following."""
        tracking, clip = live.tracking, live.shown
        reply = (
            None
            if tracking.final_reply_sent
            else render_final_reply(self._view(tracking, clip, await self._camera_names(clip)))
        )
        if reply is not None:
            if self._edits(tracking.team_id).paused_for > 0:
                return  # Slack asked this workspace to wait; a later round sends the reply
            # Recorded before sending: a crash in between must not announce the end twice.
            tracking.final_reply_sent = True
            await self._store.save(tracking)
            if not await self._reply(tracking, reply):
                return
        tracking.final_reply_sent = True
        tracking.state = TrackingState.FINISHED
        tracking.finished_at = self._clock()
        self._unschedule(tracking.id)
        await self._store.save(tracking)
        logger.info(
            "tracking %s finished: %s", tracking.id, tracking.ending, extra=_context(tracking)
        )

    async def _reply(self, tracking: Tracking, reply: RenderedMessage) -> bool:
        try:
            await self._slack.chat_postMessage(
                channel=tracking.channel_id,
                thread_ts=tracking.thread_ts or tracking.message_ts,
                text=reply.text,
                blocks=reply.blocks,
                unfurl_links=False,
                unfurl_media=False,
            )
        except SlackApiError as error:
            tracking.final_reply_sent = False
            pause = await self._slack_failed(tracking, error, "chat.postMessage")
            if pause is not None:
                # Transient: the reply is still owed; a later round sends it, after any pause.
                self._edits(tracking.team_id).pause(pause)
                await self._store.save(tracking)
            return False
        return True

    async def _slack_failed(
        self, tracking: Tracking, error: SlackApiError, method: str
    ) -> float | None:
        """Act on a failed Slack call; seconds to pause the workspace's edits, if any."""
        code = _slack_error(error)
        if code in MESSAGE_GONE_ERRORS:
            logger.warning(
                "tracking %s: %s failed with %s; the message is gone, stopping",
                tracking.id,
                method,
                code,
                extra=_context(tracking),
            )
            tracking.state = TrackingState.FINISHED
            tracking.ending = tracking.ending or MESSAGE_GONE
            tracking.finished_at = self._clock()
            self._unschedule(tracking.id)
            await self._store.save(tracking)
        elif code in INSTALL_GONE_ERRORS:
            logger.error(
                "workspace %s: Slack answered %s; the app's install is gone, "
                "stopping every tracking there",
                tracking.team_id,
                code,
                extra=_context(tracking),
            )
            now = self._clock()
            for tracking_id in await self._store.finish_team(tracking.team_id, UNINSTALLED, now):
                if (live := self._live.get(tracking_id)) is not None:
                    live.tracking.state = TrackingState.FINISHED
                    live.tracking.ending = UNINSTALLED
                    live.tracking.finished_at = now
                self._unschedule(tracking_id)
        else:
            # Transient (rate limit, Slack outage): the next round sends the newest state.
            if error.response.status_code == 429 or code == "ratelimited":
                pause = _retry_after(error)
            else:
                failures = self._slack_failures[tracking.team_id] = (
                    self._slack_failures.get(tracking.team_id, 0) + 1
                )
                backoff = min(MAX_SLACK_BACKOFF_SECONDS, 2.0 ** min(failures, 8))
                pause = backoff * random.uniform(0.5, 1.0)  # noqa: S311  # spreading retries
            logger.warning(
                "tracking %s: %s failed with %s; retrying in %.1f s",
                tracking.id,
                method,
                code,
                pause,
                extra=_context(tracking),
            )
            return pause
        return None

    async def _camera_names(self, clip: Clip | None) -> dict[str, str]:
        if clip is None or not clip.camera_ids:
            return {}
        try:
            return await self._rhombus.camera_names()
        except RhombusError as error:
            logger.info("camera names unavailable: %s", error)
            return {}

    def _view(self, tracking: Tracking, clip: Clip | None, cameras: dict[str, str]) -> StatusView:
        return StatusView(
            clip_id=tracking.clip_id,
            clip=clip,
            requester=tracking.requester_id,
            started_at=int(tracking.started_at),
            changed_at=int(tracking.changed_at),
            percent=tracking.percent,
            cameras=cameras,
            # MESSAGE_GONE and UNINSTALLED are stored endings the message never shows.
            ending=Ending(tracking.ending) if tracking.ending in _SHOWN_ENDINGS else None,
            stopped_by=tracking.stopped_by,
            give_up_minutes=max(1, round(self._settings.give_up_after / 60)),
            notice=tracking.notice,
            console_url=self._settings.console_url,
        )

    # --- Scheduling -----------------------------------------------------------------------------

    def _save_later(self, tracking: Tracking) -> None:
        """Write the row with the next batch."""
        self._unsaved[tracking.id] = tracking
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_soon(), name="trackings-writer")

    async def _write_soon(self) -> None:
        await asyncio.sleep(WRITE_BEHIND_SECONDS)
        # A failed write is retried on a timer; nothing else would signal the database is back.
        while not await self._write_unsaved(retry=True):  # noqa: ASYNC110
            await asyncio.sleep(WRITE_RETRY_SECONDS)

    async def _write_unsaved(self, *, retry: bool) -> bool:
        """Write every row waiting for the batch; False (rows kept if `retry`) when it failed."""
        if not self._unsaved:
            return True
        batch, self._unsaved = self._unsaved, {}
        try:
            await self._store.save_many(batch.values())
        except StoreError as error:
            logger.error(  # noqa: TRY400  # the reason is in the message; no traceback
                "cannot write %d tracking(s) to the database: %s%s",
                len(batch),
                error,
                "; retrying" if retry else "",
            )
            if retry:
                self._unsaved = batch | self._unsaved
            return False
        return True

    def _adopt(self, tracking: Tracking, clip: Clip | None) -> None:
        """Keep a following tracking in memory, and its clip in the feed."""
        if tracking.id not in self._live:
            self._live[tracking.id] = _Live(
                tracking,
                shown=clip,
                seen=clip,
                percent=tracking.percent,
                stale=tracking.fingerprint is None,
            )
            self._feed.follow(tracking.clip_id, clip.created_at_ms if clip else None)

    def _schedule(self, tracking_id: str, at: datetime) -> None:
        interval = self._settings.poll_interval
        self._scheduler.add_job(
            self.poll,
            IntervalTrigger(seconds=interval),
            args=[tracking_id],
            id=_job_id(tracking_id),
            name=f"follow {tracking_id}",
            replace_existing=True,
            coalesce=True,
            max_instances=1,
            misfire_grace_time=max(1, round(interval)),
            next_run_time=at,
        )

    def _pace(self, live: _Live, *, progressed: bool) -> None:
        """Poll a progressing clip every interval; a stalled one less and less often, capped."""
        if progressed:
            if live.stalls == 0:
                return
            live.stalls = 0
            delay = self._settings.poll_interval
        else:
            live.stalls += 1
            delay = min(
                max(self._settings.poll_interval, self._settings.max_poll_interval),
                self._settings.poll_interval * STALL_FACTOR ** min(live.stalls, 32),
            )
            # Clips seen stalled together (one page) are not polled in lockstep ever after.
            delay *= random.uniform(0.9, 1.1)  # noqa: S311  # spreading load, not cryptography
        self._reschedule(live.tracking.id, delay)

    def _edits(self, team_id: str) -> EditQueue:
        queue = self._edit_queues.get(team_id)
        if queue is None:
            queue = self._edit_queues[team_id] = EditQueue(team_id, self._settings.edits_per_minute)
        return queue

    def _back_off(self, live: _Live, error: RhombusError) -> None:
        """Poll a failing clip less often: exponential, capped, with jitter; Retry-After wins."""
        live.failures += 1
        delay = min(MAX_BACKOFF_SECONDS, self._settings.poll_interval * 2 ** min(live.failures, 16))
        delay *= random.uniform(0.5, 1.0)  # noqa: S311  # spreading load, not cryptography
        if isinstance(error, RateLimitedError):
            delay = max(delay, error.retry_after)
        self._reschedule(live.tracking.id, delay)

    def _reschedule(self, tracking_id: str, delay: float) -> None:
        with contextlib.suppress(JobLookupError):
            self._scheduler.modify_job(
                _job_id(tracking_id), next_run_time=datetime.now(UTC) + timedelta(seconds=delay)
            )

    def _unschedule(self, tracking_id: str) -> None:
        with contextlib.suppress(JobLookupError):
            self._scheduler.remove_job(_job_id(tracking_id))
        for queue in self._edit_queues.values():
            queue.discard(tracking_id)
        if (live := self._live.pop(tracking_id, None)) is not None:
            self._feed.unfollow(live.tracking.clip_id)

    def is_following(self, tracking_id: str) -> bool:
        """Whether a polling job exists for the tracking."""
        return self._scheduler.get_job(_job_id(tracking_id)) is not None


_SHOWN_ENDINGS = frozenset(ending.value for ending in Ending)


def _context(tracking: Tracking) -> dict[str, str | None]:
    """Ids for every log line about a tracking (shown in text logs, fields in JSON logs)."""
    return {
        "tracking": tracking.id,
        "team": tracking.team_id,
        "channel": tracking.channel_id,
        "clip": tracking.clip_id,
    }


def _job_id(tracking_id: str) -> str:
    return f"tracking:{tracking_id}"


async def _in_slices(trackings: list[Tracking]) -> AsyncIterator[tuple[int, Tracking]]:
    """Enumerate `trackings`, letting the loop run between slices: thousands take a while."""
    for index, tracking in enumerate(trackings):
        yield index, tracking
        if index % RESUME_SLICE == RESUME_SLICE - 1:
            await asyncio.sleep(0)


def _after(seconds: float) -> datetime:
    """A moment `seconds` from now, with a little jitter so jobs asked together spread out."""
    return datetime.now(UTC) + timedelta(seconds=seconds + random.uniform(0, 0.1))  # noqa: S311


def _set_notice(tracking: Tracking, notice: str | None) -> bool:
    """Set the line about trouble shown under the status; whether it changed."""
    if tracking.notice == notice:
        return False
    tracking.notice = notice
    return True


# What Rhombus changes as a clip merely progresses; any other field is worth an edit at once.
_PROGRESS_FIELDS = frozenset({"percent_complete", "last_updated_sec"})
_SHOWN_FIELDS = tuple(name for name in Clip.model_fields if name not in _PROGRESS_FIELDS)


def _same_besides_progress(shown: Clip, seen: Clip) -> bool:
    return all(getattr(shown, name) == getattr(seen, name) for name in _SHOWN_FIELDS)


def _step(percent: int | None) -> int | None:
    """The bar segment a percentage fills up to."""
    return None if percent is None else percent // EDIT_STEP_PERCENT


def _dump(clip: Clip) -> dict[str, Any]:
    return clip.model_dump(mode="json", by_alias=True, exclude_none=True)


def _load(data: dict[str, Any] | None) -> Clip | None:
    return Clip.model_validate(data) if data is not None else None


def _progress_key(clip: Clip, percent: int | None) -> tuple[ClipStatus, str | None, int | None]:
    return (clip.status, clip.current_operation, percent)


def _ending_of(clip: Clip) -> Ending | None:
    if clip.succeeded:
        return Ending.COMPLETE
    if clip.status is ClipStatus.DELETED:
        return Ending.DELETED
    if clip.status is ClipStatus.FAILED:
        return Ending.FAILED
    return None


def _retry_after(error: SlackApiError) -> float:
    value = (error.response.headers or {}).get("Retry-After") or (error.response.headers or {}).get(
        "retry-after"
    )
    try:
        return min(MAX_BACKOFF_SECONDS, max(1.0, float(value))) if value else 1.0
    except (TypeError, ValueError):
        return 1.0


def _slack_error(error: SlackApiError) -> str:
    response = error.response
    if response.status_code == 429:
        return "ratelimited"
    code = response.get("error") if isinstance(response.data, dict) else None
    return code if isinstance(code, str) else f"http_{response.status_code}"
