"""Hostile events, clicks and modal submissions: clear answers, no crash, inert text."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import pytest

from bot.home_view import ACTION_FOLLOW, ACTION_MORE, FOLLOW_MODAL
from bot.runtime import Bot
from standins.rhombus import RhombusSimulator, stays
from standins.slack_requests import event_callback, home_action, link_shared, view_submission
from tests.helpers import CLIP, RHOMBUS_KEY, assert_inert, send, text_objects

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from standins.rhombus import ManualClock

HOSTILE = "<!channel> <!here> <@U123> <https://evil|click> *bold* &amp;"
CLIP_URL = f"https://console.rhombussystems.com/clips/{CLIP}"


@pytest.fixture
async def rhombus(clock: ManualClock) -> AsyncIterator[RhombusSimulator]:
    """Rhombus with clips saved now, so they fall within the Home's last 7 days."""
    async with RhombusSimulator(api_key=RHOMBUS_KEY, clock=clock) as sim:
        yield sim


@pytest.fixture
async def bot(make_settings) -> AsyncIterator[Bot]:
    """The bot in HTTP mode, republishing Homes at most every 0.2 s."""
    running = await Bot.start(make_settings(home_refresh_seconds=0.2))
    try:
        yield running
    finally:
        await running.stop()


GARBAGE_EVENTS = [
    pytest.param({"type": "link_shared", "links": None}, id="links null"),
    pytest.param({"type": "link_shared", "links": "https://x"}, id="links a string"),
    pytest.param(
        {"type": "link_shared", "links": [5, {"url": 7}, {"url": "javascript:alert(1)"}]},
        id="links garbage",
    ),
    pytest.param({"type": "link_shared", "links": [{"url": CLIP_URL}]}, id="no channel or ts"),
    pytest.param(
        {
            "type": "link_shared",
            "channel": "C0GENERAL",
            "message_ts": [],
            "links": [{"url": CLIP_URL}],
        },
        id="ts of the wrong type",
    ),
    pytest.param({"type": "app_home_opened"}, id="no user"),
    pytest.param({"type": "app_home_opened", "user": HOSTILE, "tab": "home"}, id="hostile user"),
    pytest.param({"type": "app_home_opened", "user": "U0ALICE", "tab": None}, id="tab null"),
    pytest.param({"type": "app_home_opened", "user": "U0ALICE", "view": "nope"}, id="view garbage"),
]


@pytest.mark.parametrize("event", GARBAGE_EVENTS)
async def test_garbage_events_are_acknowledged_and_crash_nothing(
    bot, slack, rhombus, caplog, event
):
    """Each garbage event gets an empty 200; no ERROR is logged; the bot still serves."""
    rhombus.add_clip(CLIP, script=stays("UPLOADING", "Uploading video", 40))

    with caplog.at_level(logging.WARNING):
        response = await send(bot, event_callback(event))
        healthy = await bot.healthy()
        await bot.tracker.drain(0.5)

    assert (200, "") == (response.status_code, response.text)
    assert healthy[0]
    assert [] == [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert [] == [call for call in slack.calls_to("chat.unfurl") if call.ok]


GARBAGE_SUBMISSIONS = [
    pytest.param("", {}, id="nothing"),
    pytest.param(
        HOSTILE, {"channel": {"channel": {"selected_conversation": "C0GENERAL"}}}, id="clip"
    ),
    pytest.param(CLIP, {"channel": {"channel": {"selected_conversation": HOSTILE}}}, id="channel"),
    pytest.param(CLIP, {"channel": "nope"}, id="state garbage"),
    pytest.param(CLIP, {"channel": {"channel": {"selected_conversation": "U0BOB"}}}, id="a person"),
]


@pytest.mark.parametrize(("metadata", "values"), GARBAGE_SUBMISSIONS)
async def test_garbage_modal_submissions_get_a_clear_error(bot, slack, metadata, values):
    """A submission with a bad clip or channel is answered with an error on the channel field."""
    response = await send(
        bot,
        view_submission(
            {"type": "modal", "callback_id": FOLLOW_MODAL, "private_metadata": metadata}, values
        ),
    )

    answer = response.json()
    assert "errors" == answer["response_action"]
    assert answer["errors"]["channel"]
    assert [] == [m for m in slack.messages.values() if m.bot_id]


async def test_garbage_home_clicks_are_acknowledged(bot, slack, caplog):
    """More with a made-up page token, Follow with no clip id: acknowledged, nothing crashes."""
    with caplog.at_level(logging.WARNING):
        for action, value in ((ACTION_MORE, "not-a-token" * 50), (ACTION_FOLLOW, HOSTILE)):
            response = await send(bot, home_action(action, value, view_id="V0HOME"))
            assert 200 == response.status_code
        await slack.wait_for(lambda s: "U0ALICE" in s.surfaces.homes)

    assert [] == slack.surfaces.modals
    assert [] == [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


async def test_hostile_titles_stay_inert_in_the_home_and_the_unfurl(bot, slack, rhombus):
    """A clip titled with mentions and links shows them as text in the Home and in its unfurl."""
    rhombus.add_clip(CLIP, title=HOSTILE, script=stays("UPLOADING", "Uploading video", 40))
    message = slack.post_user_message("C0GENERAL", CLIP_URL)

    await send(bot, event_callback(link_shared(message, [CLIP_URL])))
    await send(bot, event_callback({"type": "app_home_opened", "user": "U0ALICE", "tab": "home"}))
    await slack.wait_for(
        lambda s: (
            "U0ALICE" in s.surfaces.homes
            and s.surfaces.unfurl_of("C0GENERAL", message.ts, CLIP_URL) is not None
        )
    )

    unfurl = slack.surfaces.unfurl_of("C0GENERAL", message.ts, CLIP_URL)
    for blocks in (slack.surfaces.homes["U0ALICE"].blocks, unfurl.blocks if unfurl else []):
        for text in text_objects(blocks, "mrkdwn"):
            assert_inert(text, {"U0ALICE"})
