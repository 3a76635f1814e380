"""`/clip new` in a real bot process, killed with SIGKILL between the splice and its message."""

from __future__ import annotations

import os
import signal
from typing import TYPE_CHECKING

import pytest

from standins.rhombus import GET_CLIP_PATH, completes
from standins.rhombus_splicing import SPLICE_PATH
from standins.slack_requests import post, slash_command
from tests.helpers import SIGNING_SECRET
from tests.processes import (
    BotProcess,
    BotProcesses,
    finished,
    kill_when,
    shown_text,
    status_messages,
)

if TYPE_CHECKING:
    from standins.rhombus import Exchange, ManualClock, RhombusSimulator
    from standins.slack import SlackSimulator

CHANNEL = "C0GENERAL"


async def make(bot: BotProcess, slack: SlackSimulator) -> None:
    """Type `/clip new Lobby -10m 1m` in #general, signed, to the process."""
    request = slash_command("new Lobby -10m 1m Door", response_url=slack.response_url())
    response = await post(f"{bot.url}/slack/events", request, signing_secret=SIGNING_SECRET)
    assert 200 == response.status_code, bot.output()


def kill_on_request(rhombus: RhombusSimulator, bot: BotProcess, path: str) -> None:
    """SIGKILL the bot the moment Rhombus receives a call to `path`, before it is answered."""

    def on_request(exchange: Exchange) -> None:
        if exchange.path == path and bot.process.returncode is None:
            os.kill(bot.process.pid, signal.SIGKILL)
            rhombus.on_request = None

    rhombus.on_request = on_request


@pytest.mark.slow
async def test_kill_9_after_the_splice_before_posting_still_follows_the_clip(
    bots: BotProcesses,
    slack: SlackSimulator,
    rhombus: RhombusSimulator,
    clock: ManualClock,
    database_url: str,
) -> None:
    """Killed after Rhombus made the clip, before its message: the next start posts it once."""
    rhombus.splicing.script = completes(10)
    first = await bots.start()
    kill_on_request(rhombus, first, GET_CLIP_PATH)  # the first call after spliceV3 answered
    await make(first, slack)
    assert -signal.SIGKILL == await bots.exit_status(first)
    assert ([], 1) == (status_messages(slack), len(rhombus.splicing.requests))

    await bots.start()

    await bots.wait_for(slack, lambda s: len(status_messages(s)) == 1)
    (message,) = status_messages(slack)
    clock.advance(35)
    await finished(database_url, message, bots)
    assert "Made from Slack by <@U0ALICE>" in shown_text(message), bots.output()
    assert "Ready" in message.text
    assert [message] == status_messages(slack)
    assert 1 == len(rhombus.splicing.requests)


@pytest.mark.slow
async def test_kill_9_between_posting_and_storing_posts_no_second_message(
    bots: BotProcesses,
    slack: SlackSimulator,
    rhombus: RhombusSimulator,
    clock: ManualClock,
    database_url: str,
) -> None:
    """Killed once Slack took the status message: the next start finds it, posts no other."""
    rhombus.splicing.script = completes(10)
    first = await bots.start()
    kill_when(slack, first, lambda c: c.method == "chat.postMessage")
    await make(first, slack)
    assert -signal.SIGKILL == await bots.exit_status(first)
    (message,) = status_messages(slack)

    await bots.start()
    clock.advance(35)

    await finished(database_url, message, bots)
    assert "Ready" in message.text, bots.output()
    assert [message] == status_messages(slack)


@pytest.mark.slow
async def test_kill_9_during_the_splice_tells_the_person(
    bots: BotProcesses, slack: SlackSimulator, rhombus: RhombusSimulator
) -> None:
    """Killed before Rhombus's answer: the next start cannot know, so it tells whoever asked."""
    first = await bots.start()
    kill_on_request(rhombus, first, SPLICE_PATH)
    await make(first, slack)
    assert -signal.SIGKILL == await bots.exit_status(first)

    await bots.start()

    await bots.wait_for(slack, lambda s: len(s.ephemerals) == 1)
    (told,) = slack.ephemerals
    assert ("chat.postEphemeral", "U0ALICE", CHANNEL) == (told.source, told.user, told.channel)
    assert "can't tell whether it was made" in told.text
    assert [] == status_messages(slack)
