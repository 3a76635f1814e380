"""Showing a followed clip in Slack: its message edited, its end announced, a lost message let go.

The tracker decides when a message must change; this renders it, queues the edit in the
workspace's budget, and once the end is shown replies in the thread (or hands the video over).
"""

from __future__ import annotations

import functools
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from bot.clips import Clip, Ending
from bot.followed import status_view
from bot.rhombus import RhombusError
from bot.slack_messages import Gone, RetryIn, Sent, Uninstalled
from bot.status_message import DEFAULT_CONSOLE_URL, render_final_reply, render_status
from bot.store import Tracking, TrackingState

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from contextlib import AbstractAsyncContextManager

    from bot.blocks import RenderedMessage
    from bot.delivery import Deliveries
    from bot.followed import Followed
    from bot.slack_messages import SlackMessages
    from bot.status_message import MadeFromSlack, StatusView
    from bot.store import Store
    from bot.workspaces import Workspaces
    from bot.write_behind import WriteBehind

logger = logging.getLogger(__name__)


class Lifecycle(Protocol):
    """What showing needs of the tracker: the live trackings, and telling it what happened."""

    def live(self, tracking_id: str) -> Followed | None:
        """The tracking in memory, while it is followed."""

    def follows(self, live: Followed) -> bool:
        """Whether this process still follows the tracking through `live` (not let go)."""

    def working(self) -> AbstractAsyncContextManager[None]:
        """Mark work under way, so shutdown can wait for it."""

    def changed(self, tracking: Tracking) -> None:
        """What the tracking's message shows changed."""

    def finished(self, tracking_id: str) -> None:
        """The tracking needs no more polls."""

    async def end_team(self, team_id: str, ending: Ending) -> int:
        """End every open tracking of the workspace."""


@dataclass(frozen=True)
class ShowSettings:
    """What status messages say beyond the clip: when the bot gives up, where the console is."""

    give_up_after: float = 30 * 60.0
    console_url: str = DEFAULT_CONSOLE_URL


class Showing:
    """Shows followed clips in their status messages, through the workspace's edit queue."""

    def __init__(  # noqa: PLR0913
        self,
        *,
        store: Store,
        workspaces: Workspaces,
        messages: SlackMessages,
        settings: ShowSettings,
        tracker: Lifecycle,
        rows: WriteBehind,
        deliveries: Deliveries | None = None,
        made: Mapping[str, MadeFromSlack] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._rows = rows
        self._workspaces = workspaces
        self._messages = messages
        self._settings = settings
        self._tracker = tracker
        self._deliveries = deliveries  # None: no video, the thread reply is text
        # Clips made from Slack (`/clip new`), by clip id: their messages say so.
        self._made: Mapping[str, MadeFromSlack] = {} if made is None else made
        self._clock = clock

    async def recover(self, tracking: Tracking) -> bool:
        """Whether the status message a crashed process posted (not recorded) is in Slack.

        Found: the row is followed again; not found: the row is forgotten.
        """
        ts = await self._messages.find_posted(tracking)
        if ts is None:
            logger.info(
                "tracking %s was not found posted; forgetting it",
                tracking.id,
                extra=tracking.log_context,
            )
            await self._store.delete(tracking.id)
            return False
        tracking.message_ts = ts
        tracking.state = TrackingState.FOLLOWING
        tracking.fingerprint = None  # unknown: the next round edits it to the present
        await self._store.save(tracking)
        logger.info(
            "recovered tracking %s: its status message was posted",
            tracking.id,
            extra=tracking.log_context,
        )
        return True

    async def close(self) -> None:
        """Stop sending edits (the database has what they showed) and write the last rows."""
        await self._messages.close()
        await self._rows.close()

    async def deliver(self, live: Followed) -> None:
        """Bring the Slack message up to date; finish the tracking once its end is shown."""
        tracking = live.tracking
        if not self._tracker.follows(live):
            return  # let go while this poll was under way: its new holder shows it
        live.progress = live.progress._replace(stale=False)
        live.record()
        self._tracker.changed(tracking)
        clip = live.progress.shown
        message = render_status(await self.view(tracking, clip))
        # What was seen is kept, whatever becomes of the edit; an ending at once.
        if tracking.ending is None:
            self._rows.save_later(tracking)
        else:
            await self._store.save(tracking)
        if message.fingerprint != tracking.fingerprint:
            # Through the workspace's edit budget; it finishes the tracking once the end is shown.
            final = tracking.ending is not None
            self._messages.edits(tracking.team_id).submit(
                tracking.id,
                functools.partial(self._send_edit, tracking.id, message, final=final),
                final=final,
            )
        elif tracking.ending is not None:
            await self.finish(live)

    async def _send_edit(
        self, tracking_id: str, message: RenderedMessage, *, final: bool
    ) -> float | None:
        """Edit the message (from the workspace's queue); seconds to pause the workspace, if any."""
        live = self._tracker.live(tracking_id)
        if live is None:
            return None
        async with self._tracker.working(), live.lock:
            tracking = live.tracking
            if tracking.state != TrackingState.FOLLOWING or not self._tracker.follows(live):
                return None  # ended, or let go while this edit waited: the holder shows it
            outcome = await self._messages.edit(tracking, message)
            if isinstance(outcome, RetryIn):
                # The next round sends the newest state, whatever the clip does meanwhile.
                live.progress = live.progress._replace(stale=True)
                return outcome.seconds
            if not isinstance(outcome, Sent):
                await self.lost(tracking, outcome, "chat.update")
                return None
            tracking.fingerprint = message.fingerprint
            # Only the edit that shows the end finishes; an older one still in flight does not.
            if final and tracking.ending is not None:
                await self.finish(live)
            else:
                self._rows.save_later(tracking)
        return None

    async def finish(self, live: Followed) -> None:
        """The end is shown: announce it in the thread (at most once) and stop following."""
        tracking, clip = live.tracking, live.progress.shown
        if not self._tracker.follows(live):
            return  # let go meanwhile: the holder announces it
        view = await self.view(tracking, clip)
        reply = None if tracking.final_reply_sent else render_final_reply(view)
        if reply is not None:
            if self._messages.paused_for(tracking.team_id) > 0:
                return  # Slack asked this workspace to wait; a later round sends the reply
            if self._deliveries is not None and tracking.ending is Ending.COMPLETE:
                # The video (or the text reply saying why not) is sent from the deliveries
                # table, which records it before the tracking is finished.
                await self._deliveries.hand_over(tracking, clip, reply, render_status(view))
                tracking.final_reply_sent, reply = True, None
        if reply is not None:
            # Recorded before sending: a crash in between must not announce the end twice.
            tracking.final_reply_sent = True
            await self._store.save(tracking)
            outcome = await self._messages.reply(tracking, reply)
            if not isinstance(outcome, Sent):
                tracking.final_reply_sent = False  # still owed, unless the message is gone
                if isinstance(outcome, RetryIn):
                    await self._store.save(tracking)
                else:
                    await self.lost(tracking, outcome, "chat.postMessage")
                return
        tracking.state = TrackingState.FINISHED
        tracking.finished_at = self._clock()
        self._tracker.finished(tracking.id)
        await self._store.save(tracking)
        logger.info(
            "tracking %s finished: %s", tracking.id, tracking.ending, extra=tracking.log_context
        )

    async def lost(self, tracking: Tracking, outcome: Gone | Uninstalled, method: str) -> None:
        """Slack says the message, or the whole install, is gone: stop following it (them)."""
        now = self._clock()
        if isinstance(outcome, Gone):
            logger.warning(
                "tracking %s: %s failed with %s; the message is gone, stopping",
                tracking.id,
                method,
                outcome.error,
                extra=tracking.log_context,
            )
            tracking.state = TrackingState.FINISHED
            tracking.ending = tracking.ending or Ending.MESSAGE_GONE
            tracking.finished_at = now
            self._tracker.finished(tracking.id)
            await self._store.save(tracking)
            return
        logger.error(
            "workspace %s: Slack answered %s; the app's install is gone, "
            "stopping every tracking there",
            tracking.team_id,
            outcome.error,
            extra=tracking.log_context,
        )
        await self._tracker.end_team(tracking.team_id, Ending.UNINSTALLED)

    async def view(self, tracking: Tracking, clip: Clip | None) -> StatusView:
        """Everything the tracking's status message shows now, camera names included."""
        return status_view(
            tracking,
            clip,
            await self._camera_names(tracking.team_id, clip),
            give_up_after=self._settings.give_up_after,
            console_url=organisation.console_url
            if (organisation := self._workspaces.organisation(tracking.team_id))
            else self._settings.console_url,
            made=self._made.get(tracking.clip_id),
        )

    async def _camera_names(self, team_id: str, clip: Clip | None) -> dict[str, str]:
        organisation = self._workspaces.organisation(team_id)
        if clip is None or not clip.camera_ids or organisation is None:
            return {}
        try:
            return await organisation.client.camera_names()
        except RhombusError as error:
            logger.info("camera names unavailable: %s", error)
            return {}
