"""`/clip new` in a real bot process, killed with SIGKILL between the splice and its message."""

from __future__ import annotations

import os
import signal
import time
from typing import TYPE_CHECKING

import pytest

from bot.unfurl_view import ACTION_UNFURL_CLIP
from standins.rhombus import GET_CLIP_PATH, LOBBY_CAMERA, completes
from standins.rhombus_splicing import SPLICE_PATH
from standins.slack_requests import (
    event_callback,
    link_shared,
    post,
    slash_command,
    unfurl_action,
)
from tests.helpers import SIGNING_SECRET
from tests.processes import (
    BotProcess,
    BotProcesses,
    finished,
    kill_when,
    shown_text,
    status_messages,
)
from tests.test_unfurls import follow_value

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


@pytest.mark.slow
async def test_kill_9_after_the_splice_of_an_unfurl_click_posts_in_the_links_thread(
    bots: BotProcesses,
    slack: SlackSimulator,
    rhombus: RhombusSimulator,
    clock: ManualClock,
    database_url: str,
) -> None:
    """Follow a clip of this, killed after the splice: the next start posts in the link's thread."""
    rhombus.splicing.script = completes(10)
    first = await bots.start()
    at_ms = (int(time.time()) - 600) * 1000
    url = f"https://console.rhombussystems.com/devices/cameras/{LOBBY_CAMERA}/?t={at_ms}"
    link = slack.post_user_message(CHANNEL, url)
    events = f"{first.url}/slack/events"
    await post(events, event_callback(link_shared(link, [url])), signing_secret=SIGNING_SECRET)
    await bots.wait_for(slack, lambda s: s.surfaces.unfurl_of(CHANNEL, link.ts, url) is not None)
    unfurl = slack.surfaces.unfurl_of(CHANNEL, link.ts, url)
    assert unfurl is not None
    kill_on_request(rhombus, first, GET_CLIP_PATH)  # the first call after spliceV3 answered
    click = unfurl_action(
        ACTION_UNFURL_CLIP, follow_value(unfurl), unfurl=unfurl, response_url=slack.response_url()
    )
    await post(events, click, signing_secret=SIGNING_SECRET)
    assert -signal.SIGKILL == await bots.exit_status(first)
    assert ([], 1) == (slack.thread_replies(CHANNEL, link.ts), len(rhombus.splicing.requests))

    await bots.start()

    await bots.wait_for(slack, lambda s: len(s.thread_replies(CHANNEL, link.ts)) == 1)
    (message,) = slack.thread_replies(CHANNEL, link.ts)
    clock.advance(35)
    await finished(database_url, message, bots)
    assert "Ready" in message.text, bots.output()
    assert [] == status_messages(slack)
