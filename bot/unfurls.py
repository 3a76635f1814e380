"""Rhombus links that unfurl: `link_shared` answered with `chat.unfurl`, kept up to date.

A camera-at-a-time link unfurls as the camera's name, location and moment (from the cached
camera list), with **Follow a clip of this** when clips can be made from Slack. A link to a
saved clip unfurls as the clip's status, and the unfurl is edited as the clip
advances until it is final. Those updates go through the workspace's edit queue, and only when
no status message edit waits there: status edits come first. With several replicas, the one
following the workspace's clips (`bot.shards`) keeps its unfurls up to date too.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
import uuid
from typing import TYPE_CHECKING, Any

from aiohttp import ClientError
from apscheduler.triggers.interval import IntervalTrigger
from slack_sdk.errors import SlackApiError

from bot.budget import Priority
from bot.handover import CHANNEL, Everything, Notice, notice
from bot.rhombus import RejectedError, RhombusError
from bot.slack_messages import INSTALL_GONE_ERRORS, NOT_INSTALLED, error_code
from bot.store import StoreError
from bot.unfurl_rows import LinkUnfurl, UnfurlRows
from bot.unfurl_view import (
    CONSOLE_HOSTS,
    CameraMoment,
    CameraShown,
    ClipLink,
    MomentClip,
    read_link,
    render_camera_unfurl,
    render_clip_unfurl,
    render_refused_unfurl,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from apscheduler.schedulers.asyncio import AsyncIOScheduler
    from slack_bolt.async_app import AsyncAck
    from slack_bolt.context.async_context import AsyncBoltContext

    from bot.blocks import RenderedMessage
    from bot.handover import Holder
    from bot.slack_messages import SlackMessages
    from bot.store import Store
    from bot.workspaces import Organisation, Workspaces

logger = logging.getLogger(__name__)

# Links unfurled per message: Slack sends every link of a message in one event.
MAX_LINKS = 5
JOB_ID = "unfurl-updates"
# chat.unfurl errors after which that unfurl can never be edited again
# (https://docs.slack.dev/reference/methods/chat.unfurl#errors).
_UNFURL_GONE = frozenset(
    {
        "cannot_find_message",
        "cannot_find_channel",
        "cannot_unfurl_url",
        "cannot_unfurl_message",
        "cannot_find_service",
        "channel_not_found",
        "message_not_found",
    }
)


class Unfurls:
    """Answers `link_shared` and keeps the unfurls of clips that are still moving up to date."""

    def __init__(  # noqa: PLR0913
        self,
        *,
        workspaces: Workspaces,
        store: Store,
        messages: SlackMessages,
        scheduler: AsyncIOScheduler,
        console_url: str,
        interval: float,
        give_up_after: float,
        offer_clips: bool = False,
        clock: Callable[[], float] = time.time,
        holder: Holder | None = None,
    ) -> None:
        self._workspaces = workspaces
        self._store = store
        self._rows = UnfurlRows(store)
        self._holder = holder or Everything()
        self._messages = messages
        self._scheduler = scheduler
        self._hosts = CONSOLE_HOSTS | {_host(console_url)}
        self._interval = interval
        self._give_up_after = give_up_after
        self._offer_clips = offer_clips
        self._clock = clock
        self._live: dict[str, LinkUnfurl] = {}
        self._closing = False

    async def resume(self, teams: Callable[[str], bool] | None = None) -> int:
        """Keep updating the stored live unfurls of the workspaces `teams` accepts (default: all).

        How many are kept up to date here now.
        """
        for unfurl in await self._rows.live():
            if teams is None or teams(unfurl.team_id):
                self._adopt(unfurl, None)
        return len(self._live)

    async def heed(self, unfurl_id: str) -> None:
        """Keep an unfurl another replica stored up to date, if its workspace is followed here."""
        unfurl = await self._rows.get(unfurl_id)
        if unfurl is not None and not unfurl.finished and self._holder.holds(unfurl.team_id):
            self._adopt(unfurl, None)

    def teams_in(self, teams: Callable[[str], bool]) -> set[str]:
        """The workspaces `teams` accepts with unfurls kept up to date here."""
        return {unfurl.team_id for unfurl in self._live.values() if teams(unfurl.team_id)}

    def let_go(self, teams: Callable[[str], bool]) -> int:
        """Stop updating those workspaces' unfurls here at once; how many there were.

        An update already queued finds its unfurl gone and sends nothing.
        """
        gone = [unfurl for unfurl in self._live.values() if teams(unfurl.team_id)]
        for unfurl in gone:
            del self._live[unfurl.id]
            if (organisation := self._workspaces.organisation(unfurl.team_id)) is not None:
                organisation.feed.unfollow(unfurl.clip_id)
        self._unschedule_if_idle()
        return len(gone)

    def close(self) -> None:
        """Stop updating; what is stored is picked up at the next start."""
        self._closing = True

    # --- Listeners ------------------------------------------------------------------------------

    async def shared(self, event: dict[str, Any], context: AsyncBoltContext) -> None:
        """`link_shared`: unfurl each Rhombus link the bot can show, and follow clips' progress."""
        links = [
            link["url"]
            for link in event.get("links") or []
            if isinstance(link, dict) and isinstance(link.get("url"), str)
        ]
        team_id = str(context.team_id or event.get("team") or "")
        shown, moving = await self._render_links(team_id, links[:MAX_LINKS], event.get("thread_ts"))
        if not shown:
            return
        unfurls = {url: {"blocks": message.blocks} for url, message in shown.items()}
        channel, ts = str(event.get("channel") or ""), str(event.get("message_ts") or "")
        composer = event.get("source") == "composer" or channel == "COMPOSER"
        if composer:
            # A preview while the message is typed: shown once, never updated.
            where = {"unfurl_id": event.get("unfurl_id"), "source": "composer"}
        else:
            where = {"channel": channel, "ts": ts}
        if not all(isinstance(value, str) and value for value in where.values()):
            logger.info("link_shared without a message to unfurl in; ignored")
            return
        if await self._unfurl(team_id, where, unfurls) is not None or composer:
            return
        for url, (clip_id, message) in moving.items():
            await self._follow(
                team_id=team_id, channel=channel, ts=ts, url=url, clip_id=clip_id, message=message
            )

    async def _render_links(
        self, team_id: str, links: list[str], thread_ts: object = None
    ) -> tuple[dict[str, RenderedMessage], dict[str, tuple[str, RenderedMessage]]]:
        """Each link's unfurl; and the clip id of those to keep up to date (not final yet)."""
        organisation = self._workspaces.organisation(team_id)
        if organisation is None:
            return {}, {}  # nothing of Rhombus can be shown without its organisation
        shown: dict[str, RenderedMessage] = {}
        moving: dict[str, tuple[str, RenderedMessage]] = {}
        for url in dict.fromkeys(links):
            target = read_link(url, self._hosts)
            if isinstance(target, CameraMoment):
                camera, can_clip = await self._camera(organisation, target.camera_id)
                offer = MomentClip.of(target, thread_ts) if can_clip and self._offer_clips else None
                shown[url] = render_camera_unfurl(
                    target, camera, organisation.console_url, offer=offer
                )
            elif isinstance(target, ClipLink):
                rendered = await self._clip_unfurl(organisation, target.clip_id)
                if rendered is not None:
                    shown[url] = rendered[0]
                    if rendered[1]:
                        moving[url] = (target.clip_id, rendered[0])
        return shown, moving

    async def open_button(self, ack: AsyncAck) -> None:
        """**Open in Rhombus** in an unfurl is a link; its click must be acknowledged."""
        await ack()

    # --- Unfurling ------------------------------------------------------------------------------

    async def _clip_unfurl(
        self, organisation: Organisation, clip_id: str
    ) -> tuple[RenderedMessage, bool] | None:
        """The clip's unfurl and whether it will still change; None when Rhombus cannot say."""
        try:
            clip = await organisation.client.get_clip(clip_id, priority=Priority.LOOKUP)
        except RejectedError as error:
            return render_refused_unfurl(clip_id, str(error)), False
        except RhombusError as error:
            logger.info("not unfurling clip %s: %s", clip_id, error)
            return None
        return render_clip_unfurl(clip_id, clip, organisation.console_url), not clip.is_final

    async def _camera(self, organisation: Organisation, camera_id: str) -> tuple[CameraShown, bool]:
        """The camera's name and location, and whether a clip can be made from it."""
        try:
            cameras = await organisation.directory.cameras()
        except RhombusError as error:
            logger.info("camera list unavailable: %s", error)
            return CameraShown(), False
        # Archived cameras are left out, as Rhombus leaves them out of the camera list.
        found = next((camera for camera in cameras if camera.uuid == camera_id), None)
        if found is None:
            return CameraShown(), False
        return CameraShown(found.name, found.location), True

    async def _unfurl(
        self, team_id: str, where: dict[str, Any], unfurls: dict[str, Any]
    ) -> str | None:
        """Call chat.unfurl; Slack's error code, or None when it took the unfurls."""
        client = self._workspaces.slack(team_id)
        if client is None:
            return NOT_INSTALLED
        try:
            await client.chat_unfurl(unfurls=unfurls, **where)
        except SlackApiError as error:
            code = error_code(error)
            logger.warning("chat.unfurl failed with %s", code)
            return code
        except (ClientError, TimeoutError) as error:
            logger.warning("chat.unfurl failed: %s", type(error).__name__)
            return "slack_unreachable"
        return None

    async def _follow(  # noqa: PLR0913
        self,
        *,
        team_id: str,
        channel: str,
        ts: str,
        url: str,
        clip_id: str,
        message: RenderedMessage,
    ) -> None:
        if any(
            (u.channel_id, u.message_ts, u.url) == (channel, ts, url) for u in self._live.values()
        ) or await self._rows.find(channel, ts, url):
            return  # the same message's link, unfurled again (an edit of the message)
        unfurl = LinkUnfurl(
            id=uuid.uuid4().hex,
            team_id=team_id,
            channel_id=channel,
            message_ts=ts,
            url=url,
            clip_id=clip_id,
            fingerprint=message.fingerprint,
            changed_at=self._clock(),
            finished=False,
        )
        try:
            await self._rows.save(unfurl)
        except StoreError as error:
            logger.error("cannot keep the unfurl of clip %s up to date: %s", clip_id, error)  # noqa: TRY400
            return
        if self._holder.holds(team_id):
            self._adopt(unfurl, None)
            return
        try:  # the replica following the workspace keeps it up to date
            await self._store.notify(CHANNEL, notice(Notice.UNFURL, unfurl.id))
        except StoreError as error:  # its next rescan finds the row
            logger.warning("cannot hand unfurl %s over: %s", unfurl.id, error)

    # --- Updates --------------------------------------------------------------------------------

    def _adopt(self, unfurl: LinkUnfurl, created_at_ms: int | None) -> None:
        if unfurl.id not in self._live:
            self._live[unfurl.id] = unfurl
            if (organisation := self._workspaces.organisation(unfurl.team_id)) is not None:
                organisation.feed.follow(unfurl.clip_id, created_at_ms)
        if self._scheduler.get_job(JOB_ID) is None:
            # One job looks at every live unfurl; it runs only while there are some.
            self._scheduler.add_job(
                self._round,
                IntervalTrigger(seconds=self._interval),
                id=JOB_ID,
                replace_existing=True,
                max_instances=1,
                coalesce=True,
            )

    async def _round(self) -> None:
        """Look at every live unfurl's clip; queue an update for those whose unfurl changed."""
        if self._closing:
            return
        await asyncio.gather(*(self._check(unfurl) for unfurl in list(self._live.values())))

    async def _check(self, unfurl: LinkUnfurl) -> None:
        organisation = self._workspaces.organisation(unfurl.team_id)
        if organisation is None:
            await self._finish(unfurl)  # uninstalled, or Rhombus disconnected
            return
        try:
            clip = await organisation.feed.poll(unfurl.clip_id)
        except RejectedError:
            await self._finish(unfurl)  # the clip is gone; its unfurl keeps the last state
            return
        except RhombusError:
            return  # the next round asks again
        if clip is None:
            return
        message = render_clip_unfurl(unfurl.clip_id, clip, organisation.console_url)
        if message.fingerprint == unfurl.fingerprint:
            if self._clock() - unfurl.changed_at > self._give_up_after:
                await self._finish(unfurl)
            return
        queue = self._messages.edits(unfurl.team_id)
        if queue.waiting or queue.paused_for > 0:
            return  # status message edits wait (or Slack asked to): they go first
        queue.submit(
            f"unfurl:{unfurl.id}",
            functools.partial(self._send, unfurl.id, message, final=clip.is_final),
            final=False,
        )

    async def _send(self, unfurl_id: str, message: RenderedMessage, *, final: bool) -> float | None:
        """Edit the unfurl (from the workspace's edit queue)."""
        unfurl = self._live.get(unfurl_id)
        if unfurl is None or self._closing or not self._holder.holds(unfurl.team_id):
            return None
        where = {"channel": unfurl.channel_id, "ts": unfurl.message_ts}
        code = await self._unfurl(unfurl.team_id, where, {unfurl.url: {"blocks": message.blocks}})
        if unfurl.id not in self._live:
            return None  # let go to another replica meanwhile: its row is that replica's now
        if code in _UNFURL_GONE or code in INSTALL_GONE_ERRORS or code == NOT_INSTALLED:
            await self._finish(unfurl)
            return None
        if code is not None:
            return None  # passing trouble: the next round sends the newest state
        unfurl.fingerprint = message.fingerprint
        unfurl.changed_at = self._clock()
        if final:
            await self._finish(unfurl)
            return None
        try:
            await self._rows.save(unfurl)
        except StoreError as error:
            logger.warning("cannot record unfurl %s: %s", unfurl.id, error)
        return None

    async def _finish(self, unfurl: LinkUnfurl) -> None:
        if self._live.pop(unfurl.id, None) is None:
            return
        if (organisation := self._workspaces.organisation(unfurl.team_id)) is not None:
            organisation.feed.unfollow(unfurl.clip_id)
        self._unschedule_if_idle()
        unfurl.finished = True
        try:
            await self._rows.save(unfurl)
        except StoreError as error:
            logger.warning("cannot record unfurl %s: %s", unfurl.id, error)

    def _unschedule_if_idle(self) -> None:
        if not self._live and self._scheduler.get_job(JOB_ID) is not None:
            self._scheduler.remove_job(JOB_ID)


def _host(url: str) -> str:
    return url.split("://", 1)[-1].split("/", 1)[0].split(":", 1)[0].lower()
