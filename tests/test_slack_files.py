"""Slack's external upload, a marked reply and files.info: bot.slack_files against the stand-in."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

import httpx
import pytest
from slack_sdk.web.async_client import AsyncWebClient

from bot.slack_files import Done, Later, Refused, Share, SlackFiles, Ticket
from tests.helpers import BOT_TOKEN

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

    from standins.slack import SlackSimulator

DATA = bytes(range(256)) * 1000


@pytest.fixture
async def files(slack: SlackSimulator) -> AsyncIterator[SlackFiles]:
    """The bot's file calls, against the stand-in."""
    client = AsyncWebClient(token=BOT_TOKEN, base_url=slack.api_url)
    files = SlackFiles(client)
    yield files
    await files.aclose()


@pytest.fixture
def video(tmp_path: Path) -> Path:
    """A file on disk."""
    path = tmp_path / "clip.mp4"
    path.write_bytes(DATA)
    return path


async def uploaded(files: SlackFiles, video: Path) -> Ticket:
    """A file whose bytes reached Slack, not yet completed."""
    ticket = await files.upload_ticket("clip.mp4", len(DATA))
    assert isinstance(ticket, Ticket)
    assert Done() == await files.send_bytes(ticket, video, len(DATA), seconds=10)
    return ticket


async def test_the_file_is_shared_in_the_thread_with_its_comment(slack, files, video):
    """Three steps: the bytes arrive whole, the comment is the message in the thread."""
    parent = slack.post_user_message("C0GENERAL", "status")
    ticket = await uploaded(files, video)

    outcome = await files.complete(
        ticket.file_id,
        title="Lobby door",
        channel_id="C0GENERAL",
        thread_ts=parent.ts,
        comment="<@U0ALICE> your clip is ready",
    )

    assert Done() == outcome
    (reply,) = slack.thread_replies("C0GENERAL", parent.ts)
    assert "<@U0ALICE> your clip is ready" == reply.text
    (file,) = slack.shared_files("C0GENERAL", parent.ts)
    assert (DATA, hashlib.sha256(DATA).hexdigest()) == (file.data, file.sha256)
    assert Share.SHARED == await files.share_of(ticket.file_id, "C0GENERAL")
    assert Share.UNSHARED == await files.share_of(ticket.file_id, "C0RANDOM")


async def test_a_file_is_completed_once(slack, files, video):
    """A second completion of the same file shares nothing more."""
    parent = slack.post_user_message("C0GENERAL", "status")
    ticket = await uploaded(files, video)
    arguments = {"title": "t", "channel_id": "C0GENERAL", "thread_ts": parent.ts, "comment": "c"}

    first = await files.complete(ticket.file_id, **arguments)
    second = await files.complete(ticket.file_id, **arguments)

    assert (Done(), Refused("file_not_found")) == (first, second)
    assert 1 == len(slack.thread_replies("C0GENERAL", parent.ts))


async def test_sharing_needs_membership(slack, files, video):
    """chat:write.public posts in #random, but a file is shared only where the bot is."""
    parent = slack.post_user_message("C0RANDOM", "status")
    ticket = await uploaded(files, video)

    outcome = await files.complete(
        ticket.file_id, title="t", channel_id="C0RANDOM", thread_ts=parent.ts, comment="c"
    )

    assert Refused("not_in_channel") == outcome
    assert Share.MISSING == await files.share_of(ticket.file_id, "C0RANDOM")
    assert Done() == await files.join("C0RANDOM")
    assert Done() == await files.complete(
        ticket.file_id, title="t", channel_id="C0RANDOM", thread_ts=parent.ts, comment="c"
    )


async def test_a_private_file_is_shared_nowhere(slack, files, video):
    """Completed without a channel, the file exists and is in no conversation."""
    ticket = await uploaded(files, video)

    assert Done() == await files.complete(
        ticket.file_id, title="t", channel_id=None, thread_ts=None, comment=None
    )

    assert {} == slack.files[ticket.file_id].shares
    assert Share.UNSHARED == await files.share_of(ticket.file_id, "C0GENERAL")


async def test_the_length_must_match(slack, files):
    """Fewer bytes than announced: the upload URL answers 400 and the file cannot complete."""
    ticket = await files.upload_ticket("clip.mp4", 10)
    assert isinstance(ticket, Ticket)

    async with httpx.AsyncClient() as client:
        response = await client.post(ticket.upload_url, content=b"12345")

    assert 400 == response.status_code
    assert Refused("file_not_found") == await files.complete(
        ticket.file_id, title="t", channel_id=None, thread_ts=None, comment=None
    )
    assert 5 == slack.files[ticket.file_id].received


async def test_passing_and_lasting_refusals(slack, files):
    """A 429 is passing, with Slack's wait; a workspace without uploads refuses for good."""
    slack.fail("files.getUploadURLExternal", retry_after=7)
    slack.fail("files.getUploadURLExternal", error="file_uploads_disabled")

    first = await files.upload_ticket("clip.mp4", 10)
    second = await files.upload_ticket("clip.mp4", 10)

    assert (Later("ratelimited", 7.0), Refused("file_uploads_disabled")) == (first, second)


async def test_without_files_write_the_upload_is_refused(slack, files):
    """Installed before files:write was asked for: missing_scope."""
    slack.scopes -= {"files:write"}

    assert Refused("missing_scope") == await files.upload_ticket("clip.mp4", 10)


async def test_a_marked_reply_is_found_again(slack, files):
    """The text reply carries its key: a restart finds it in the thread, and only it."""
    parent = slack.post_user_message("C0GENERAL", "status")

    outcome = await files.reply("C0GENERAL", parent.ts, "no video", [], "tracking-1")

    assert isinstance(outcome, Done)
    assert await files.find_reply("C0GENERAL", parent.ts, "tracking-1")
    assert not await files.find_reply("C0GENERAL", parent.ts, "tracking-2")


async def test_slack_out_of_reach_cannot_say_whether_a_file_is_shared(slack, files):
    """files.info failing with a 5xx: unknown, not "not shared"."""
    slack.fail("files.info", error="internal_error", status=500)

    assert Share.UNKNOWN == await files.share_of("F0NOTHING", "C0GENERAL")
