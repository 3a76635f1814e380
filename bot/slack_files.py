"""Files in Slack: join a channel, upload in three steps, confirm a share, a marked reply.

Slack's errors become outcomes here, as in `bot.slack_messages`: done, refused (for good, with
Slack's code), retry later. No `SlackApiError` leaves this module. The bytes are streamed from a
file on disk to the upload URL, never read whole into memory (slack_sdk's `files_upload_v2`
reads the whole file, synchronously: not usable for clips).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any

import httpx
from aiohttp import ClientError
from slack_sdk.errors import SlackApiError

from bot.slack_messages import UNREACHABLE, error_code

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable
    from pathlib import Path

    from slack_sdk.web.async_client import AsyncWebClient
    from slack_sdk.web.async_slack_response import AsyncSlackResponse

    from bot.blocks import RenderedMessage

logger = logging.getLogger(__name__)

# The text reply that stands in for a video carries this metadata, so a restart can find it.
REPLY_METADATA_EVENT = "rhombus_clip_delivered"
UPLOAD_CHUNK_BYTES = 1024 * 1024
# Errors that pass: the same call may well work a little later.
TRANSIENT_ERRORS = frozenset(
    {
        UNREACHABLE,
        "ratelimited",
        "internal_error",
        "fatal_error",
        "service_unavailable",
        "request_timeout",
        "file_update_failed",  # completeUploadExternal's "the file could not be updated"
    }
)


class Share(Enum):
    """What files.info says of a file and a channel."""

    SHARED = "shared"  # the file is in the channel
    UNSHARED = "unshared"  # Slack has the file, not (yet: sharing is asynchronous) in the channel
    MISSING = "missing"  # file_not_found: never completed, or gone
    UNKNOWN = "unknown"  # Slack could not be asked


@dataclass(frozen=True)
class Done:
    """Slack did it; `value` is what the call returns (a ts, a file id, or empty)."""

    value: str = ""


@dataclass(frozen=True)
class Ticket:
    """Where to send a file's bytes (files.getUploadURLExternal)."""

    upload_url: str
    file_id: str


@dataclass(frozen=True)
class Refused:
    """Slack will not do it, whatever the retries (`error` is its code)."""

    error: str


@dataclass(frozen=True)
class Later:
    """Passing trouble: try again (after `seconds` if Slack said so, else with backoff)."""

    error: str
    seconds: float | None = None


class SlackFiles:
    """The file calls a delivery makes, each turned into Done / Ticket / Refused / Later."""

    def __init__(self, client: AsyncWebClient, http: httpx.AsyncClient | None = None) -> None:
        self._client = client
        # The upload URL is its own credential: no token goes with the bytes.
        self._http = http or httpx.AsyncClient(trust_env=False)

    async def aclose(self) -> None:
        """Close the connection pool the bytes go through."""
        await self._http.aclose()

    async def join(self, channel_id: str) -> Done | Refused | Later:
        """Join a public channel (conversations.join): files are shared only where the bot is."""
        return await _call(self._client.conversations_join(channel=channel_id))

    async def upload_ticket(self, filename: str, length: int) -> Ticket | Refused | Later:
        """Ask for an upload URL for `length` bytes (files.getUploadURLExternal)."""
        outcome = await _call(
            self._client.files_getUploadURLExternal(filename=filename, length=length),
            keys=("upload_url", "file_id"),
        )
        if not isinstance(outcome, Done):
            return outcome
        upload_url, _, file_id = outcome.value.partition("\n")
        if not upload_url.startswith(("https://", "http://")) or not file_id:
            return Later("bad_upload_answer")
        return Ticket(upload_url, file_id)

    async def send_bytes(
        self, ticket: Ticket, path: Path, length: int, *, seconds: float
    ) -> Done | Refused | Later:
        """Stream the file to the upload URL; Slack answers 200 when it has every byte."""
        try:
            async with asyncio.timeout(seconds):
                response = await self._http.post(
                    ticket.upload_url,
                    content=_read_chunks(path),
                    headers={
                        "content-type": "application/octet-stream",
                        "content-length": str(length),
                    },
                    timeout=httpx.Timeout(60.0, connect=10.0),
                )
        except (httpx.HTTPError, TimeoutError, OSError) as error:
            return Later(f"upload_failed ({type(error).__name__})")
        if response.status_code == 200:
            return Done()
        if response.status_code == 429 or response.status_code >= 500:
            return Later(f"upload_http_{response.status_code}")
        return Refused(f"upload_http_{response.status_code}")

    async def complete(
        self,
        ticket_file_id: str,
        *,
        title: str,
        channel_id: str | None,
        thread_ts: str | None,
        comment: str | None,
    ) -> Done | Refused | Later:
        """Finish the upload (files.completeUploadExternal): shared in the thread, or private.

        Slack: "This method can only be called once"; a second call with the same file shares
        nothing twice.
        """
        arguments: dict[str, Any] = {"files": [{"id": ticket_file_id, "title": title}]}
        if channel_id is not None:
            arguments["channel_id"] = channel_id
            if thread_ts is not None:
                arguments["thread_ts"] = thread_ts
        if comment is not None:
            arguments["initial_comment"] = comment
        return await _call(self._client.files_completeUploadExternal(**arguments))

    async def share_of(self, file_id: str, channel_id: str) -> Share:
        """Whether the file is shared in the channel, as files.info says."""
        try:
            answer = await self._client.files_info(file=file_id)
        except SlackApiError as error:
            return Share.MISSING if error_code(error) == "file_not_found" else Share.UNKNOWN
        except (ClientError, TimeoutError):
            return Share.UNKNOWN
        file = answer.get("file")
        shares = file.get("shares") if isinstance(file, dict) else None
        if isinstance(shares, dict) and any(
            isinstance(where, dict) and channel_id in where for where in shares.values()
        ):
            return Share.SHARED
        return Share.UNSHARED

    async def show(
        self, channel_id: str, ts: str, message: RenderedMessage
    ) -> Done | Refused | Later:
        """Replace a message's content (chat.update): the finished status with its thumbnail."""
        return await _call(
            self._client.chat_update(
                channel=channel_id, ts=ts, text=message.text, blocks=message.blocks
            )
        )

    async def reply(
        self, channel_id: str, thread_ts: str, text: str, blocks: list[dict[str, Any]], key: str
    ) -> Done | Refused | Later:
        """Post a text reply in the thread, marked with `key` so `find_reply` can find it."""
        return await _call(
            self._client.chat_postMessage(
                channel=channel_id,
                thread_ts=thread_ts,
                text=text,
                blocks=blocks,
                unfurl_links=False,
                unfurl_media=False,
                metadata={"event_type": REPLY_METADATA_EVENT, "event_payload": {"key": key}},
            ),
            keys=("ts",),
        )

    async def find_reply(self, channel_id: str, thread_ts: str, key: str) -> bool | None:
        """Whether the thread holds the reply marked with `key`; None when Slack cannot say."""
        try:
            answer = await self._client.conversations_replies(
                channel=channel_id, ts=thread_ts, include_all_metadata=True, limit=1000
            )
        except (SlackApiError, ClientError, TimeoutError):
            return None
        for message in answer.get("messages") or []:
            metadata = message.get("metadata") or {}
            payload = metadata.get("event_payload") or {}
            if metadata.get("event_type") == REPLY_METADATA_EVENT and payload.get("key") == key:
                return True
        return False


async def _call(
    call: Awaitable[AsyncSlackResponse], keys: tuple[str, ...] = ()
) -> Done | Refused | Later:
    """Make one call; Done carries the answer's `keys`, one a line."""
    try:
        answer = await call
    except SlackApiError as error:
        code = error_code(error)
        if code == "ratelimited":
            return Later(code, _retry_after(error))
        if code in TRANSIENT_ERRORS or code.startswith("http_5"):
            return Later(code)
        return Refused(code)
    except (ClientError, TimeoutError) as error:
        return Later(f"{UNREACHABLE} ({type(error).__name__})")
    return Done("\n".join(str(answer.get(key) or "") for key in keys))


def _retry_after(error: SlackApiError) -> float | None:
    headers = error.response.headers or {}
    value = headers.get("Retry-After") or headers.get("retry-after")
    try:
        return max(1.0, float(value)) if value else None
    except (TypeError, ValueError):
        return None


async def _read_chunks(path: Path) -> AsyncIterator[bytes]:
    """The file's bytes, a chunk at a time, each read off the event loop."""
    with path.open("rb") as file:
        while chunk := await asyncio.to_thread(file.read, UPLOAD_CHUNK_BYTES):
            yield chunk
