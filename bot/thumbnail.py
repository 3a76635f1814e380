"""The finished clip's thumbnail in its status message: uploaded to Slack, shared nowhere.

Rhombus serves the still beside the mp4 (`.jpeg`, same credentials); Slack shows a file the
bot uploaded, by id, in an image block, so nobody needs Rhombus credentials to see it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Protocol

from bot.blocks import RenderedMessage, one_line, truncate
from bot.media import MEGABYTE, MediaError, downloaded, media_url, transfer_seconds
from bot.slack_files import Done, Later, SlackFiles, Ticket
from bot.workspaces import NotConnectedError

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    import httpx

    from bot.blocks import JsonBlock
    from bot.delivery_rows import Delivery
    from bot.workspaces import Workspaces

logger = logging.getLogger(__name__)

THUMBNAIL_MAX_BYTES = 10 * MEGABYTE
ALT_TEXT_LIMIT = 2000  # an image block's alt_text


class EditSubmitter(Protocol):
    """A workspace's queue of status message edits (`SlackMessages.edits`)."""

    def submit(self, key: str, send: Callable[[], Awaitable[float | None]], *, final: bool) -> None:
        """Queue the newest edit of message `key`."""


class Thumbnails:
    """Shows finished clips' thumbnails in their status messages."""

    def __init__(
        self,
        *,
        workspaces: Workspaces,
        uploads: httpx.AsyncClient,
        edits: Callable[[str], EditSubmitter],
    ) -> None:
        self._workspaces = workspaces
        self._uploads = uploads  # the connection pool clips' bytes go to Slack through
        self._edits = edits  # a workspace's queue of status message edits

    async def show(self, delivery: Delivery, region: str) -> str | None:
        """Upload the clip's jpeg, shared nowhere, and show it; its Slack file id, if uploaded."""
        try:
            files = self._files(delivery)
            file_id = await self._upload(delivery, region)
        except NotConnectedError:
            return None
        except MediaError as error:
            logger.info("no thumbnail: %s", error.reason, extra=delivery.log_context)
            return None
        if file_id is None:
            return None
        shown = with_thumbnail(
            RenderedMessage(delivery.status_text, delivery.status_blocks), file_id, delivery.title
        )

        shown_once: asyncio.Future[bool] = asyncio.get_running_loop().create_future()

        async def edit() -> float | None:
            outcome = await files.show(delivery.channel_id, delivery.message_ts, shown)
            if not shown_once.done():
                shown_once.set_result(isinstance(outcome, Done))
            if not isinstance(outcome, Done):
                logger.info("thumbnail not shown: %s", outcome, extra=delivery.log_context)
            return outcome.seconds if isinstance(outcome, Later) else None

        # Through the workspace's edit budget, like every edit of a status message; waited for,
        # so that a delivery stopped before the edit went out shows it again after a restart.
        self._edits(delivery.team_id).submit(delivery.tracking_id, edit, final=True)
        return file_id if await shown_once else None

    def _files(self, delivery: Delivery) -> SlackFiles:
        client = self._workspaces.slack(delivery.team_id)
        if client is None:
            raise NotConnectedError(delivery.team_id)
        return SlackFiles(client, self._uploads)

    async def _upload(self, delivery: Delivery, region: str) -> str | None:
        """The Slack file id of the clip's thumbnail, uploaded privately; None if Slack refused."""
        organisation = self._workspaces.rhombus(delivery.team_id)
        files = self._files(delivery)
        url = media_url(organisation.media_url, region, delivery.clip_id, "jpeg")
        async with downloaded(
            organisation.client,
            url,
            key=delivery.tracking_id,
            max_bytes=THUMBNAIL_MAX_BYTES,
            expected_size=None,
            expected_sha256=None,
        ) as file:
            ticket = await files.upload_ticket(f"{delivery.clip_id}.jpeg", file.size)
            if not isinstance(ticket, Ticket):
                logger.info("no thumbnail: Slack answered %s", ticket, extra=delivery.log_context)
                return None
            sent = await files.send_bytes(
                ticket, file.path, file.size, seconds=transfer_seconds(file.size)
            )
        if isinstance(sent, Done):
            # No channel: the file stays private to the bot, which may still show it in blocks.
            sent = await files.complete(
                ticket.file_id, title=delivery.title, channel_id=None, thread_ts=None, comment=None
            )
        if not isinstance(sent, Done):
            logger.info("no thumbnail: Slack answered %s", sent, extra=delivery.log_context)
            return None
        return ticket.file_id


def with_thumbnail(message: RenderedMessage, file_id: str, title: str) -> RenderedMessage:
    """The status message with the clip's thumbnail (a file in Slack) above its buttons.

    An image block can show a file uploaded to Slack by id, even one shared nowhere
    (https://docs.slack.dev/reference/block-kit/composition-objects/slack-file-object).
    """
    image: JsonBlock = {
        "type": "image",
        "slack_file": {"id": file_id},
        "alt_text": truncate(f"Thumbnail of {one_line(title)}", ALT_TEXT_LIMIT),
    }
    blocks = [block for block in message.blocks if block.get("type") != "image"]
    at = len(blocks) - 1 if blocks and blocks[-1].get("type") == "actions" else len(blocks)
    return RenderedMessage(message.text, [*blocks[:at], image, *blocks[at:]])
