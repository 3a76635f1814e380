"""Following clips from Slack: `/clip <refs>`, the message shortcut, and the message's buttons."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from bot.blocks import escape_mrkdwn, truncate
from bot.budget import SHORT_WAIT_SECONDS, Priority
from bot.clips import Clip, Visibility, find_references, parse_references
from bot.policy import Asker
from bot.rhombus import (
    AuthenticationError,
    RateLimitedError,
    RejectedError,
    RhombusError,
)
from bot.slack_messages import UNREACHABLE as SLACK_UNREACHABLE
from bot.status_message import StatusView, render_status
from bot.tracker import AlreadyFollowing, NotPosted
from bot.workspaces import NOT_CONNECTED, not_connected

if TYPE_CHECKING:
    from slack_bolt.async_app import AsyncAck, AsyncRespond
    from slack_bolt.context.async_context import AsyncBoltContext

    from bot.policy import Policy
    from bot.store import Tracking
    from bot.tracker import Tracker
    from bot.workspaces import Workspaces

logger = logging.getLogger(__name__)

_CANNOT_POST = frozenset(
    {"not_in_channel", "channel_not_found", "is_archived", "restricted_action"}
)


class Following:
    """Following clips from Slack: `/clip <refs>`, the message shortcut, the message's buttons."""

    def __init__(self, tracker: Tracker, workspaces: Workspaces, policy: Policy) -> None:
        self._tracker = tracker
        self._workspaces = workspaces
        self._policy = policy

    async def follow_text(
        self, asker: Asker, text: str, respond: AsyncRespond, context: AsyncBoltContext
    ) -> None:
        """`/clip <refs>`: post and follow a status message per clip."""
        parsed = parse_references(text)
        notes = [f"• {rejection.reason}" for rejection in parsed.rejected[:10]]
        if len(parsed.rejected) > 10:
            notes.append(f"• …and {len(parsed.rejected) - 10} more")
        if not parsed.clip_ids:
            notes.append("Type `/clip help` for how to use it.")
        await self._follow(asker, parsed.clip_ids, notes, respond, context)

    async def track_shortcut(
        self,
        ack: AsyncAck,
        shortcut: dict[str, Any],
        respond: AsyncRespond,
        context: AsyncBoltContext,
    ) -> None:
        """Message shortcut: follow the clips a message mentions, in that message's thread."""
        await ack()
        message = shortcut.get("message") or {}
        asker = Asker(
            team_id=str((shortcut.get("team") or {}).get("id") or context.team_id or ""),
            channel_id=str((shortcut.get("channel") or {}).get("id") or ""),
            user_id=str((shortcut.get("user") or {}).get("id") or ""),
            thread_ts=str(message.get("thread_ts") or message.get("ts") or "") or None,
        )
        if refusal := self._policy.refusal(asker):
            await respond(text=refusal, response_type="ephemeral")
            return
        if self._workspaces.organisation(asker.team_id) is None:
            answer = not_connected(asker.team_id, shortcut.get("api_app_id"))
            await respond(text=answer, response_type="ephemeral")
            return
        clip_ids = find_references(str(message.get("text") or ""))
        if not clip_ids:
            await respond(
                text="I found no Rhombus clip in that message: it needs a clip id "
                "(22 characters of A-Z a-z 0-9 - _) or a link that contains one.",
                response_type="ephemeral",
            )
            return
        await self._follow(asker, clip_ids, [], respond, context)

    async def refresh_button(
        self, ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond
    ) -> None:
        """`Refresh`: poll now."""
        await ack()
        tracking = await self._tracking_of(body)
        if tracking is None or not await self._tracker.refresh(tracking.id):
            await respond(
                text="This clip is no longer being followed.",
                response_type="ephemeral",
                replace_original=False,
            )

    async def stop_button(self, ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond) -> None:
        """`Stop updates`: stop following, and say who stopped it."""
        await ack()
        tracking = await self._tracking_of(body)
        user_id = str((body.get("user") or {}).get("id") or "")
        if tracking is None or not await self._tracker.stop(tracking.id, user_id):
            await respond(
                text="This clip is no longer being followed.",
                response_type="ephemeral",
                replace_original=False,
            )

    async def open_button(self, ack: AsyncAck) -> None:
        """`Open in Rhombus` is a link; Slack still sends the click, which must be acknowledged."""
        await ack()

    async def follow_one(self, asker: Asker, clip_id: str, context: AsyncBoltContext) -> str | None:
        """Follow one clip in the asker's channel as `/clip` does; a note if something stops it."""
        async with self._tracker.working():
            return await self._follow_one(asker, clip_id, context)

    # --- The shared path ------------------------------------------------------------------------

    async def _follow(
        self,
        asker: Asker,
        clip_ids: list[str],
        notes: list[str],
        respond: AsyncRespond,
        context: AsyncBoltContext,
    ) -> None:
        if len(clip_ids) > self._policy.max_clips:
            notes.append(
                f"• I follow at most {self._policy.max_clips} clips at once; "
                f"skipped {len(clip_ids) - self._policy.max_clips}."
            )
            clip_ids = clip_ids[: self._policy.max_clips]
        async with self._tracker.working():
            for clip_id in clip_ids:
                note = await self._follow_one(asker, clip_id, context)
                if note:
                    notes.append(f"• {note}")
        if notes:
            await respond(text="\n".join(notes), response_type="ephemeral", replace_original=False)

    async def _follow_one(
        self, asker: Asker, clip_id: str, context: AsyncBoltContext
    ) -> str | None:
        """Follow one clip; a note for the person who asked when something stopped it."""
        existing = await self._tracker.find_open(asker.team_id, asker.channel_id, clip_id)
        if existing is not None:
            return await self._already_following(clip_id, existing)
        clip = await self._look_up(asker.team_id, clip_id)
        if isinstance(clip, str):
            return clip
        if clip.visibility is not Visibility.ORG_WIDE and not self._policy.post_restricted_clips:
            return self._restricted(clip_id, clip, asker.user_id)
        result = await self._tracker.follow(
            team_id=asker.team_id,
            channel_id=asker.channel_id,
            thread_ts=asker.thread_ts,
            clip_id=clip_id,
            requester_id=asker.user_id,
            clip=clip,
        )
        if isinstance(result, NotPosted):
            return _cannot_post(clip_id, result.error, context.bot_user_id)
        if isinstance(result, AlreadyFollowing):
            return await self._already_following(clip_id, result.tracking)
        return None

    async def _look_up(self, team_id: str, clip_id: str) -> Clip | str:  # noqa: PLR0911
        """The clip, or what to tell the person who asked when Rhombus cannot give it."""
        organisation = self._workspaces.organisation(team_id)
        if organisation is None:
            return NOT_CONNECTED
        rhombus = organisation.client
        try:
            try:
                return await rhombus.get_clip(clip_id, priority=Priority.LOOKUP)
            except RateLimitedError as error:
                if error.retry_after > SHORT_WAIT_SECONDS:
                    raise
                # Already acknowledged: a short wait serves the person better than "try again".
                await asyncio.sleep(error.retry_after)
                return await rhombus.get_clip(clip_id, priority=Priority.LOOKUP)
        except RejectedError as error:
            return f"Rhombus can't find clip `{clip_id}`: {_inline(str(error))}"
        except AuthenticationError:
            return "Rhombus refused the bot's API key; ask whoever runs the bot to check it."
        except RateLimitedError as error:
            return (
                f"Rhombus is busy; try `{clip_id}` again in {max(1, round(error.retry_after))} s."
            )
        except RhombusError:
            logger.warning("lookup of clip %s failed", clip_id, exc_info=True)
            return f"Rhombus is unreachable right now; try `{clip_id}` again in a minute."

    async def _already_following(self, clip_id: str, tracking: Tracking) -> str:
        link = await self._tracker.permalink(tracking)
        where = f"<{link}|its status message>" if link else "its status message"
        return f"Clip `{clip_id}` is already being followed in this channel: see {where}."

    def _restricted(self, clip_id: str, clip: Clip, user_id: str) -> str:
        shown = render_status(
            StatusView(clip_id=clip_id, clip=clip, requester=user_id, started_at=0, changed_at=0)
        )
        visibility = clip.visibility.value.replace("_", " ").lower()
        return (
            f"Clip `{clip_id}` is {visibility} in Rhombus, so I won't post it in the channel. "
            f"Just for you: {shown.text}"
        )

    async def _tracking_of(self, body: dict[str, Any]) -> Tracking | None:
        channel = str(
            (body.get("channel") or {}).get("id")
            or (body.get("container") or {}).get("channel_id")
            or ""
        )
        message_ts = str(
            (body.get("message") or {}).get("ts")
            or (body.get("container") or {}).get("message_ts")
            or ""
        )
        if not channel or not message_ts:
            return None
        return await self._tracker.tracking_for_message(channel, message_ts)


def _cannot_post(clip_id: str, error: str, bot_user_id: str | None) -> str:
    if error == "ratelimited":
        return f"Slack asked the bot to slow down; try `{clip_id}` again in a minute."
    if error == SLACK_UNREACHABLE:
        return f"Slack could not be reached; try `{clip_id}` again in a minute."
    if error in _CANNOT_POST:
        bot = f"<@{bot_user_id}>" if bot_user_id else "the bot"
        return f"I can't post in this channel ({error}): `/invite {bot}`, then try again."
    return f"Slack refused the status message for `{clip_id}` ({error})."


def _inline(text: str) -> str:
    # Cut after escaping, but never inside an entity: "&am" would show as junk.
    return truncate(escape_mrkdwn(text), 300)
