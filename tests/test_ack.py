"""Commands, shortcuts and clicks are answered at once; their listeners run after the answer."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import TYPE_CHECKING

import httpx
import pytest

from bot.runtime import Bot
from bot.status_message import ACTION_STOP
from standins.rhombus import GET_CLIP_PATH, Fault, stays
from standins.slack_requests import Origin, block_action, message_shortcut, sign, slash_command
from tests.helpers import (
    CLIP,
    SIGNING_SECRET,
    send,
    shown_text,
    status_messages,
    stored,
    wait_until,
)

if TYPE_CHECKING:
    from standins.rhombus import RhombusSimulator
    from standins.slack import Message, SlackSimulator
    from standins.slack_requests import SlackRequest

# Held back for less than the bot's Rhombus timeout in these tests (2 s).
SLOW_RHOMBUS = Fault("slow", path=GET_CLIP_PATH, delay=1.0)


def clip_lookups_answered(rhombus: RhombusSimulator) -> list[int | None]:
    """The HTTP status of each clip lookup Rhombus got so far; None while it is not answered."""
    return [e.status for e in rhombus.exchanges if e.path == GET_CLIP_PATH]


def warnings_logged(caplog: pytest.LogCaptureFixture) -> list[str]:
    """Every WARNING (or worse) logged so far, from any logger."""
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


async def test_clip_is_answered_before_rhombus_is(bot, slack, rhombus):
    """With Rhombus slow, /clip gets an empty 200 first; the status message is posted after."""
    rhombus.add_clip(CLIP, script=stays("UPLOADING", "Uploading video", 10))
    rhombus.inject(SLOW_RHOMBUS)

    response = await send(bot, slash_command(CLIP, response_url=slack.response_url()))

    assert (200, "") == (response.status_code, response.text)
    assert [] == status_messages(slack)
    assert all(status is None for status in clip_lookups_answered(rhombus))
    await slack.wait_for(lambda s: len(status_messages(s)) == 1, timeout=10)
    assert [200] == clip_lookups_answered(rhombus)
    assert "Uploading" in status_messages(slack)[0].text


async def test_clip_is_answered_before_bolt_asks_slack_anything(bot, slack, rhombus):
    """The first /clip is answered before Bolt's own auth.test, which Slack is slow to answer."""
    rhombus.add_clip(CLIP, script=stays("UPLOADING", "Uploading video", 10))
    slack.fail("auth.test", delay=1.0)

    response = await send(bot, slash_command(CLIP, response_url=slack.response_url()))

    assert (200, "") == (response.status_code, response.text)
    assert [] == slack.calls_to("auth.test")
    assert 0 == rhombus.calls[GET_CLIP_PATH]
    await slack.wait_for(lambda s: len(status_messages(s)) == 1, timeout=10)
    assert 1 == len(slack.calls_to("auth.test"))


async def test_shortcut_is_answered_before_rhombus_is(bot, slack, rhombus):
    """With Rhombus slow, the message shortcut gets an empty 200 first, then the thread reply."""
    rhombus.add_clip(CLIP, script=stays("UPLOADING", "Uploading video", 10))
    rhombus.inject(SLOW_RHOMBUS)
    source = slack.post_user_message("C0GENERAL", f"Look at {CLIP}")

    response = await send(
        bot, message_shortcut(source, callback_id="track_clip", response_url=slack.response_url())
    )

    assert (200, "") == (response.status_code, response.text)
    assert [] == slack.thread_replies("C0GENERAL", source.ts)
    assert all(status is None for status in clip_lookups_answered(rhombus))
    await slack.wait_for(lambda s: len(s.thread_replies("C0GENERAL", source.ts)) == 1, timeout=10)


async def test_button_is_answered_before_slack_edits(bot, slack, rhombus):
    """With chat.update slow, Stop updates gets an empty 200 before the message is edited."""
    rhombus.add_clip(CLIP, script=stays("UPLOADING", "Uploading video", 10))
    await send(bot, slash_command(CLIP, response_url=slack.response_url()))
    await slack.wait_for(lambda s: len(status_messages(s)) == 1)
    (message,) = status_messages(slack)
    await stored(bot, message)
    slack.fail("chat.update", delay=1.0)

    bob = Origin(user_id="U0BOB", user_name="bob")

    response = await send(
        bot,
        block_action(
            ACTION_STOP, CLIP, message=message, response_url=slack.response_url(), origin=bob
        ),
    )

    assert (200, "") == (response.status_code, response.text)
    assert [] == slack.calls_to("chat.update")
    assert "<@U0BOB>" not in shown_text(message)
    await slack.wait_for(lambda _: "<@U0BOB>" in shown_text(message), timeout=10)


def hand_signed(body: str, timestamp: str) -> dict[str, str]:
    """Signature headers carrying `timestamp` as given, signed with the right secret."""
    headers = sign(body, SIGNING_SECRET, int(time.time()))
    return {**headers, "X-Slack-Request-Timestamp": timestamp}


@pytest.mark.parametrize("kind", ["command", "shortcut", "button"])
async def test_unsigned_requests_are_refused_before_any_work(bot, slack, rhombus, kind):
    """No, a wrong, an old or a malformed signature: 401, and no listener runs."""
    rhombus.add_clip(CLIP, script=stays("UPLOADING", "Uploading video", 10))
    source = slack.post_user_message("C0GENERAL", f"Look at {CLIP}")
    request = requests_of_each_kind(slack, source)[kind]
    url = f"http://127.0.0.1:{bot.port}/slack/events"

    statuses = [
        (await send(bot, request, signature=signature)).status_code
        for signature in ("missing", "wrong", "old")
    ]
    async with httpx.AsyncClient(trust_env=False) as client:
        for timestamp in ("soon", ""):
            response = await client.post(
                url,
                content=request.body,
                headers={
                    "Content-Type": request.content_type,
                    **hand_signed(request.body, timestamp),
                },
            )
            statuses.append(response.status_code)

    assert [401] * 5 == statuses
    # A signed command afterwards is handled: the refused ones never reached a listener.
    await send(bot, slash_command("help", response_url=slack.response_url()))
    await slack.wait_for(lambda s: len(s.ephemerals) == 1)
    assert "/clip &lt;clip id or link&gt;" in slack.ephemerals[0].text
    assert 1 == len(slack.ephemerals)
    assert 0 == rhombus.calls[GET_CLIP_PATH]
    assert [] == [c.method for c in slack.calls if c.method != "auth.test"]
    assert [] == status_messages(slack)
    assert [] == slack.thread_replies("C0GENERAL", source.ts)


async def test_any_request_with_an_unreadable_timestamp_is_refused(bot):
    """Events and anything else Bolt answers itself: a timestamp that is not a number is a 401."""
    body = json.dumps({"type": "url_verification", "token": "x", "challenge": "c"})
    async with httpx.AsyncClient(trust_env=False) as client:
        response = await client.post(
            f"http://127.0.0.1:{bot.port}/slack/events",
            content=body,
            headers={"Content-Type": "application/json", **hand_signed(body, "soon")},
        )

    assert 401 == response.status_code


def requests_of_each_kind(slack: SlackSimulator, source: Message) -> dict[str, SlackRequest]:
    """A /clip, a message shortcut and a Stop click, each for CLIP."""
    return {
        "command": slash_command(CLIP, response_url=slack.response_url()),
        "shortcut": message_shortcut(
            source, callback_id="track_clip", response_url=slack.response_url()
        ),
        "button": block_action(
            ACTION_STOP, CLIP, message=source, response_url=slack.response_url()
        ),
    }


async def test_shutdown_lets_a_command_under_way_finish(make_settings, slack, rhombus, caplog):
    """Stopped while Rhombus is slow to answer a lookup: the status message is still posted."""
    rhombus.add_clip(CLIP, script=stays("UPLOADING", "Uploading video", 10))
    rhombus.inject(Fault("slow", path=GET_CLIP_PATH, delay=0.5))
    bot = await Bot.start(make_settings())
    try:
        await send(bot, slash_command(CLIP, response_url=slack.response_url()))
        await wait_for_lookup(rhombus)
    finally:
        await bot.stop()

    assert 1 == len(status_messages(slack))
    assert [200] == clip_lookups_answered(rhombus)
    assert [] == slack.ephemerals
    assert [] == warnings_logged(caplog)


async def test_shutdown_cancels_a_command_that_outlasts_the_grace(
    make_settings, slack, rhombus, caplog
):
    """Stopped while a lookup outlasts the grace: it is cancelled, and nothing runs on after."""
    rhombus.add_clip(CLIP, script=stays("UPLOADING", "Uploading video", 10))
    rhombus.inject(Fault("slow", path=GET_CLIP_PATH, delay=3.0))
    bot = await Bot.start(make_settings())
    try:
        await send(bot, slash_command(CLIP, response_url=slack.response_url()))
        await wait_for_lookup(rhombus)
    finally:
        await bot.stop(grace=0.2)

    assert [] == status_messages(slack)
    assert [] == slack.ephemerals
    assert [None] == clip_lookups_answered(rhombus)
    assert ["shutting down: cancelled 1 Slack request(s) under way"] == warnings_logged(caplog)


async def test_commands_during_shutdown_are_refused(make_settings, slack, rhombus):
    """Once shutdown has begun, a new /clip gets 503 rather than an answer nobody would honour."""
    rhombus.add_clip(CLIP, script=stays("UPLOADING", "Uploading video", 10))
    rhombus.inject(SLOW_RHOMBUS)
    bot = await Bot.start(make_settings())
    await send(bot, slash_command(CLIP, response_url=slack.response_url()))
    await wait_for_lookup(rhombus)
    stopping = asyncio.create_task(bot.stop())
    try:
        await asyncio.sleep(0)  # stop() begins, then waits for the lookup under way
        late = await send(bot, slash_command(CLIP, response_url=slack.response_url()))
    finally:
        await stopping

    assert 503 == late.status_code
    assert 1 == rhombus.calls[GET_CLIP_PATH]
    assert 1 == len(status_messages(slack))


async def wait_for_lookup(rhombus: RhombusSimulator) -> None:
    """Wait until Rhombus has received a clip lookup."""
    await wait_until(lambda: rhombus.calls[GET_CLIP_PATH] > 0)
