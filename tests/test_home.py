"""The App Home through the real endpoint: events, buttons and the modal, against the stand-ins."""

from __future__ import annotations

import itertools
import json
import logging
import time
from typing import TYPE_CHECKING

import pytest

from bot.home_view import ACTION_FOLLOW, ACTION_MORE, CHANNEL_ACTION, CHANNEL_BLOCK, FOLLOW_MODAL
from bot.runtime import Bot
from bot.store import TrackingState
from standins.rhombus import RhombusSimulator, completes, stays
from standins.slack_requests import (
    app_home_opened,
    event_callback,
    home_action,
    send_over_socket,
    view_submission,
)
from tests.helpers import CLIP, OTHER, RHOMBUS_KEY, clip_command, send, status_messages, stored

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from standins.rhombus import ManualClock
    from standins.slack import SlackSimulator


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


def home_text(slack: SlackSimulator, user: str = "U0ALICE") -> str:
    """The person's published Home, as JSON text."""
    return json.dumps(slack.surfaces.homes[user].blocks, ensure_ascii=False)


def publishes(slack: SlackSimulator) -> int:
    """How many times the bot published a Home successfully."""
    return sum(call.ok for call in slack.calls_to("views.publish"))


async def open_home(bot, slack, count=1):
    """Open the Home tab and wait for the `count`-th publish."""
    response = await send(bot, event_callback(app_home_opened()))
    assert (200, "") == (response.status_code, response.text)
    await slack.wait_for(lambda s: publishes(s) >= count)


async def test_home_of_a_person_with_nothing(bot, slack):
    """Nothing followed, nothing in Rhombus: the Home says so and how to start."""
    await open_home(bot, slack)

    text = home_text(slack)
    assert "You follow no clip. Type `/clip &lt;clip id or link&gt;` in a channel" in text
    assert "No clip was saved in Rhombus in the last 7 days." in text
    (call,) = slack.calls_to("views.publish")
    assert "U0ALICE" == call.args["user_id"]


async def test_home_shows_live_clips_first_then_finished(bot, slack, rhombus, clock):
    """A live clip is listed with its state and channel; a finished one below, with its end."""
    rhombus.add_clip(CLIP, title="Lobby door", script=stays("UPLOADING", "Uploading video", 40))
    rhombus.add_clip(OTHER, title="Dock gate", script=completes(1))
    await clip_command(bot, slack, f"{CLIP} {OTHER}")
    await slack.wait_for(lambda s: len(status_messages(s)) == 2)
    clock.advance(10)
    dock = next(m for m in status_messages(slack) if "Dock gate" in m.text)
    await stored(bot, dock, TrackingState.FINISHED)

    await open_home(bot, slack)

    text = home_text(slack)
    assert "Lobby door> · ⬆️ Uploading 40% · in <#C0GENERAL> · asked by <@U0ALICE>" in text
    assert text.index("Lobby door") < text.index("Finished in the last 7 days")
    assert "Dock gate> · ✅ Ready · in <#C0GENERAL>" in text
    assert text.index("Finished in the last 7 days") < text.index("Dock gate>")


async def test_home_is_republished_when_a_followed_clip_changes(bot, slack, rhombus):
    """After an open, the person's clip changing republishes their Home (coalesced)."""
    rhombus.add_clip(CLIP, title="Lobby door", script=stays("UPLOADING", "Uploading video", 20))
    await open_home(bot, slack)
    await clip_command(bot, slack, CLIP)
    await slack.wait_for(lambda s: "Uploading 20%" in home_text(s))

    rhombus.set_clip(CLIP, percentComplete=55)

    await slack.wait_for(lambda s: "Uploading 55%" in home_text(s))
    started = [c.time for c in slack.calls_to("views.publish")]
    assert all(b - a >= 0.15 for a, b in itertools.pairwise(started))


async def test_recent_clips_page_by_ten_with_more(bot, slack, rhombus):
    """Ten recent clips at a time, newest first, restricted ones left out; More adds ten."""
    for number in range(24):
        rhombus.add_clip(title=f"Clip {number:02d}", started_ago=100 - number)
    rhombus.add_clip(title="Private one", visibility="PRIVATE")

    await open_home(bot, slack)
    first = home_text(slack)
    assert "Clip 23" in first
    assert "Clip 14" in first
    assert "Clip 13" not in first
    assert "Private one" not in first
    more = next(
        element["value"]
        for block in slack.surfaces.homes["U0ALICE"].blocks
        for element in block.get("elements", [])
        if element.get("action_id") == ACTION_MORE
    )

    view_id = slack.surfaces.homes["U0ALICE"].id
    response = await send(bot, home_action(ACTION_MORE, more, view_id=view_id))

    assert 200 == response.status_code
    await slack.wait_for(lambda s: "Clip 04" in home_text(s))
    assert "Clip 03" not in home_text(slack)
    assert len(slack.surfaces.homes["U0ALICE"].blocks) <= 100


async def test_follow_in_a_channel_from_the_home(bot, slack, rhombus):
    """Follow in a channel… opens a modal; submitting it follows the clip there, as /clip does."""
    rhombus.add_clip(CLIP, title="Lobby door", script=stays("RENDERING", "Processing", 30))
    await open_home(bot, slack)
    view_id = slack.surfaces.homes["U0ALICE"].id

    trigger = slack.views.trigger()
    await send(bot, home_action(ACTION_FOLLOW, CLIP, view_id=view_id, trigger_id=trigger))
    await slack.wait_for(lambda s: len(s.surfaces.modals) == 1)
    (modal,) = slack.surfaces.modals
    assert (FOLLOW_MODAL, CLIP) == (modal.callback_id, modal.private_metadata)

    chosen = {CHANNEL_BLOCK: {CHANNEL_ACTION: {"selected_conversation": "C0RANDOM"}}}
    response = await send(
        bot,
        view_submission(
            {"type": "modal", "callback_id": FOLLOW_MODAL, "private_metadata": CLIP}, chosen
        ),
    )

    assert 200 == response.status_code
    await slack.wait_for(lambda s: len(status_messages(s, "C0RANDOM")) == 1)
    (message,) = status_messages(slack, "C0RANDOM")
    assert "<@U0ALICE>" in json.dumps(message.blocks)
    await slack.wait_for(lambda s: "Rendering 30% · in <#C0RANDOM>" in home_text(s))


async def test_follow_modal_refuses_a_missing_channel_and_a_disallowed_one(
    make_settings, slack, rhombus
):
    """No channel, or one outside ALLOWED_CHANNEL_IDS: the modal shows why, nothing is posted."""
    bot = await Bot.start(make_settings(allowed_channel_ids="C0GENERAL"))
    try:
        rhombus.add_clip(CLIP)
        answers = []
        for values in (
            {},
            {CHANNEL_BLOCK: {CHANNEL_ACTION: {"selected_conversation": "C0RANDOM"}}},
        ):
            response = await send(
                bot,
                view_submission(
                    {"type": "modal", "callback_id": FOLLOW_MODAL, "private_metadata": CLIP}, values
                ),
            )
            answers.append(response.json())
    finally:
        await bot.stop()

    assert {
        "response_action": "errors",
        "errors": {"channel": "Pick a public or private channel."},
    } == answers[0]
    assert "errors" == answers[1]["response_action"]
    assert answers[1]["errors"]["channel"].startswith(
        "Sorry, clips can't be followed in this channel."
    )
    assert [] == status_messages(slack, "C0RANDOM")


@pytest.mark.parametrize("error", ["hash_conflict", "view_too_large"])
async def test_a_view_slack_refuses_is_handled(bot, slack, caplog, error):
    """hash_conflict publishes again without the hash; a view too large gives way to a small one."""
    slack.fail("views.publish", error=error)

    with caplog.at_level(logging.WARNING):
        await open_home(bot, slack)

    assert [error, None] == [call.error for call in slack.calls_to("views.publish")]
    assert [] == [r for r in caplog.records if r.levelno >= logging.ERROR]
    if error == "view_too_large":
        assert "This page could not be shown: view too large." in home_text(slack)


async def test_home_over_socket_mode(make_settings, slack):
    """In Socket Mode the event arrives as an events_api envelope, acknowledged at once."""
    bot = await Bot.start(make_settings(slack_app_token="xapp-test-app-token-0123456789"))
    try:
        await slack.wait_for_socket_connection()
        started = time.monotonic()
        ack = await send_over_socket(slack, event_callback(app_home_opened()))
        assert time.monotonic() - started < 3
        assert "envelope_id" in ack
        await slack.wait_for(lambda s: publishes(s) == 1)
    finally:
        await bot.stop()


async def test_a_follow_from_the_home_that_fails_says_why_in_the_home(bot, slack):
    """A clip Rhombus refuses: the modal closed already, so the Home shows the reason."""
    await open_home(bot, slack)
    chosen = {CHANNEL_BLOCK: {CHANNEL_ACTION: {"selected_conversation": "C0RANDOM"}}}

    response = await send(
        bot,
        view_submission(
            {"type": "modal", "callback_id": FOLLOW_MODAL, "private_metadata": CLIP}, chosen
        ),
    )

    assert (200, "") == (response.status_code, response.text)
    await slack.wait_for(lambda s: f"Rhombus can't find clip `{CLIP}`" in home_text(s))
    assert "In <#C0RANDOM>:" in home_text(slack)
    assert [] == status_messages(slack, "C0RANDOM")
