"""The Events API over HTTP: events answered before the bot works on them; Slack's URL check."""

from __future__ import annotations

import json

from standins.rhombus import GET_CLIP_PATH, Fault, stays
from standins.slack_requests import EventRequest, event_callback, link_shared
from tests.helpers import CLIP, send

CLIP_URL = f"https://console.rhombussystems.com/clips/{CLIP}"


async def test_an_event_is_answered_before_rhombus_is(bot, slack, rhombus):
    """With Rhombus slow, link_shared gets an empty 200 first; the unfurl follows."""
    rhombus.add_clip(CLIP, script=stays("UPLOADING", "Uploading video", 10))
    rhombus.inject(Fault("slow", path=GET_CLIP_PATH, delay=1.0))
    message = slack.post_user_message("C0GENERAL", CLIP_URL)

    response = await send(bot, event_callback(link_shared(message, [CLIP_URL])))

    assert (200, "") == (response.status_code, response.text)
    assert [] == slack.calls_to("chat.unfurl")
    await slack.wait_for(lambda s: len(s.calls_to("chat.unfurl")) == 1, timeout=10)


async def test_slacks_url_check_is_answered_with_its_challenge(bot):
    """Setting the events URL, Slack sends url_verification; the answer carries the challenge."""
    payload = {
        "token": "x",
        "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P",
        "type": "url_verification",
    }

    response = await send(bot, EventRequest("events_api", payload, json.dumps(payload)))

    assert 200 == response.status_code
    assert payload["challenge"] in response.text
