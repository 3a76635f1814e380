"""Status messages in Slack: post, edit, reply, link, find again after a crash.

Slack's errors become a few outcomes here (sent, message gone, install gone, retry in N s), which
the tracker branches on; no `SlackApiError` leaves this module. Every edit of a workspace's
messages goes through that workspace's edit queue.
"""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aiohttp import ClientError
from slack_sdk.errors import SlackApiError

from bot.budget import SHORT_WAIT_SECONDS, Backoff
from bot.edits import EditQueue

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from slack_sdk.web.async_client import AsyncWebClient
    from slack_sdk.web.async_slack_response import AsyncSlackResponse

    from bot.blocks import RenderedMessage
    from bot.store import Tracking

logger = logging.getLogger(__name__)

# Message metadata marking the bot's status messages, so a restart can find one it lost.
METADATA_EVENT = "rhombus_clip_followed"
# How far Slack's clock may be ahead of ours when looking for a just-posted message.
CLOCK_SKEW_SECONDS = 120.0
# A status message is tried at most this many times while Slack asks for short waits.
POST_ATTEMPTS = 3
MAX_RETRY_AFTER_SECONDS = 300.0
UNREACHABLE = "slack_unreachable"  # the code of a call that never got an answer
NOT_INSTALLED = "not_installed"  # the workspace has no installation (any more)
# Consecutive transient failures in a workspace (Slack outage) space its calls out.
FAILURE_BACKOFF = Backoff(1.0, 2.0, 60.0)

# chat.update / chat.postMessage errors after which the message can never be edited again
# (https://docs.slack.dev/reference/methods/chat.update#errors).
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


@dataclass(frozen=True)
class Sent:
    """Slack took the message; `ts` is its timestamp."""

    ts: str


@dataclass(frozen=True)
class Gone:
    """The message can never be edited again (deleted, channel archived or left)."""

    error: str


@dataclass(frozen=True)
class Uninstalled:
    """The app's install in the workspace is gone or broken."""

    error: str


@dataclass(frozen=True)
class RetryIn:
    """Passing trouble (rate limit, outage): try again in `seconds`."""

    seconds: float
    error: str


Outcome = Sent | Gone | Uninstalled | RetryIn

# A workspace this replica does not know (yet): installed a moment ago on another replica, or
# uninstalled, which its uninstall event ends everywhere. Passing, either way.
NOT_KNOWN_HERE = RetryIn(5.0, NOT_INSTALLED)


class SlackMessages:
    """Sends the bot's status messages and thread replies, one edit queue per workspace."""

    def __init__(
        self,
        clients: Callable[[str], AsyncWebClient | None],
        *,
        edits_per_minute: float,
    ) -> None:
        self._clients = clients  # the Slack client of a workspace; None when not installed
        self._edits_per_minute = edits_per_minute
        self._queues: dict[str, EditQueue] = {}
        self._failures: dict[str, int] = {}  # transient failures in a row, per workspace

    def edits(self, team_id: str) -> EditQueue:
        """The queue every edit of the workspace's messages goes through."""
        queue = self._queues.get(team_id)
        if queue is None:
            queue = self._queues[team_id] = EditQueue(team_id, self._edits_per_minute)
        return queue

    def waiting_edits(self) -> dict[str, int]:
        """How many edits wait in each workspace's queue."""
        return {team_id: queue.waiting for team_id, queue in self._queues.items()}

    def forget(self, tracking_id: str) -> None:
        """Drop any edit of the tracking's message still waiting (its tracking ended)."""
        for queue in self._queues.values():
            queue.discard(tracking_id)

    async def close(self) -> None:
        """Stop sending edits; those still waiting are dropped (the database has their state)."""
        for queue in list(self._queues.values()):  # a queue may be added meanwhile
            await queue.close()

    async def post_status(self, tracking: Tracking, message: RenderedMessage) -> Outcome:
        """Post the status message, waiting out a short Retry-After: the person is waiting anyway.

        (Several clips asked for at once are several messages in one channel at once.)
        """
        client = self._clients(tracking.team_id)
        if client is None:
            return NOT_KNOWN_HERE
        for attempt in range(1, POST_ATTEMPTS + 1):
            outcome = await self._call(
                tracking,
                "chat.postMessage",
                client.chat_postMessage(
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
                ),
            )
            # Only a 429 surely posted nothing; anything else could duplicate the message.
            if (
                not isinstance(outcome, RetryIn)
                or outcome.error != "ratelimited"
                or outcome.seconds > SHORT_WAIT_SECONDS
                or attempt == POST_ATTEMPTS
            ):
                return outcome
            logger.info(
                "posting clip %s: Slack asked to wait %.0f s; waiting",
                tracking.clip_id,
                outcome.seconds,
                extra=tracking.log_context,
            )
            await asyncio.sleep(outcome.seconds)
        raise AssertionError("unreachable")  # pragma: no cover

    async def edit(self, tracking: Tracking, message: RenderedMessage) -> Outcome:
        """Replace the status message's content."""
        client = self._clients(tracking.team_id)
        if client is None:
            return NOT_KNOWN_HERE
        return await self._call(
            tracking,
            "chat.update",
            client.chat_update(
                channel=tracking.channel_id,
                ts=tracking.message_ts or "",
                text=message.text,
                blocks=message.blocks,
            ),
        )

    async def reply(self, tracking: Tracking, message: RenderedMessage) -> Outcome:
        """Reply in the status message's thread; passing trouble pauses the workspace's edits."""
        client = self._clients(tracking.team_id)
        if client is None:
            return NOT_KNOWN_HERE
        outcome = await self._call(
            tracking,
            "chat.postMessage",
            client.chat_postMessage(
                channel=tracking.channel_id,
                thread_ts=tracking.thread_ts or tracking.message_ts,
                text=message.text,
                blocks=message.blocks,
                unfurl_links=False,
                unfurl_media=False,
            ),
        )
        if isinstance(outcome, RetryIn):
            self.edits(tracking.team_id).pause(outcome.seconds)
        return outcome

    def paused_for(self, team_id: str) -> float:
        """Seconds left before Slack accepts the workspace's calls again (0: now)."""
        queue = self._queues.get(team_id)
        return queue.paused_for if queue is not None else 0.0

    async def permalink(self, tracking: Tracking) -> str | None:
        """A link to the tracking's status message, if Slack gives one."""
        client = self._clients(tracking.team_id)
        if tracking.message_ts is None or client is None:
            return None
        try:
            answer = await client.chat_getPermalink(
                channel=tracking.channel_id, message_ts=tracking.message_ts
            )
        except SlackApiError:
            return None
        permalink = answer.get("permalink")
        return permalink if isinstance(permalink, str) else None

    async def find_posted(self, tracking: Tracking) -> str | None:
        """The ts of the tracking's status message if Slack has it, else None.

        For a tracking whose process died between `chat.postMessage` and saving the ts: the
        message carries the tracking id in its metadata, so the channel (or thread) itself says
        whether it exists. None too when Slack cannot be asked.
        """
        oldest = f"{tracking.started_at - CLOCK_SKEW_SECONDS:.6f}"
        client = self._clients(tracking.team_id)
        if client is None:
            return None
        try:
            if tracking.thread_ts:
                answer = await client.conversations_replies(
                    channel=tracking.channel_id,
                    ts=tracking.thread_ts,
                    oldest=oldest,
                    include_all_metadata=True,
                    limit=200,
                )
            else:
                answer = await client.conversations_history(
                    channel=tracking.channel_id,
                    oldest=oldest,
                    include_all_metadata=True,
                    limit=200,
                )
        except SlackApiError as error:
            logger.warning(
                "cannot check whether tracking %s was posted (%s)",
                tracking.id,
                error_code(error),
                extra=tracking.log_context,
            )
            return None
        for message in answer.get("messages") or []:
            metadata = message.get("metadata") or {}
            payload = metadata.get("event_payload") or {}
            if (
                metadata.get("event_type") == METADATA_EVENT
                and payload.get("tracking_id") == tracking.id
            ):
                return str(message["ts"])
        return None

    async def _call(
        self, tracking: Tracking, method: str, call: Awaitable[AsyncSlackResponse]
    ) -> Outcome:
        """Make one call and say what came of it."""
        try:
            answer = await call
        except SlackApiError as error:
            return self._failed(tracking, method, error_code(error), error)
        except (ClientError, TimeoutError) as error:
            # slack_sdk's async client lets aiohttp's connection errors through.
            return self._failed(tracking, method, UNREACHABLE, error)
        self._failures.pop(tracking.team_id, None)
        return Sent(str(answer.get("ts") or ""))

    def _failed(self, tracking: Tracking, method: str, code: str, error: Exception) -> Outcome:
        if code in MESSAGE_GONE_ERRORS:
            return Gone(code)
        if code in INSTALL_GONE_ERRORS:
            return Uninstalled(code)
        if isinstance(error, SlackApiError) and code == "ratelimited":
            seconds = _retry_after(error)
        else:
            failures = self._failures[tracking.team_id] = (
                self._failures.get(tracking.team_id, 0) + 1
            )
            seconds = FAILURE_BACKOFF.delay(failures, random.random())  # noqa: S311  # spreading
        logger.warning(
            "tracking %s: %s failed with %s; retrying in %.1f s",
            tracking.id,
            method,
            code,
            seconds,
            extra=tracking.log_context,
        )
        return RetryIn(seconds, code)


def error_code(error: SlackApiError) -> str:
    """Slack's error code for a failed call: `ratelimited` for a 429, else the `error` field."""
    response = error.response
    if response.status_code == 429:
        return "ratelimited"
    code = response.get("error") if isinstance(response.data, dict) else None
    return code if isinstance(code, str) else f"http_{response.status_code}"


def _retry_after(error: SlackApiError) -> float:
    headers = error.response.headers or {}
    value = headers.get("Retry-After") or headers.get("retry-after")
    try:
        return min(MAX_RETRY_AFTER_SECONDS, max(1.0, float(value))) if value else 1.0
    except (TypeError, ValueError):
        return 1.0
