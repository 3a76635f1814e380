"""Rhombus links that unfurl, through the real endpoint and Socket Mode, against the stand-ins."""

from __future__ import annotations

import json
import time

import pytest

from bot.moment_clips import NOT_OURS
from bot.runtime import Bot
from bot.store import TrackingState
from bot.unfurl_rows import UnfurlRows
from bot.unfurl_view import ACTION_UNFURL_CLIP
from bot.unfurls import JOB_ID
from standins.rhombus import LOBBY_CAMERA, stays
from standins.slack_requests import (
    Origin,
    event_callback,
    link_shared,
    send_over_socket,
    unfurl_action,
)
from tests.helpers import (
    APP_TOKEN,
    CLIP,
    OTHER,
    clip_command,
    finished,
    send,
    shown_text,
    status_messages,
    stored,
    wait_until,
)

CONSOLE = "https://console.rhombussystems.com"
CLIP_URL = f"{CONSOLE}/clips/{CLIP}"


def unfurled(slack, message, url):
    """The unfurl of `url` in `message` as JSON text, or "" while there is none."""
    unfurl = slack.surfaces.unfurl_of(message.channel, message.ts, url)
    return json.dumps(unfurl.blocks, ensure_ascii=False) if unfurl else ""


async def share(bot, slack, text, urls, **kwargs):
    """A person posts `text` with links; Slack sends link_shared to the bot."""
    message = slack.post_user_message("C0GENERAL", text)
    response = await send(bot, event_callback(link_shared(message, urls)), **kwargs)
    assert (200, "") == (response.status_code, response.text)
    return message


async def test_a_clip_link_unfurls_as_its_status_and_follows_it_to_the_end(bot, slack, rhombus):
    """The unfurl shows the clip's status, is updated as it advances, and stops once final."""
    rhombus.add_clip(CLIP, title="Lobby door", script=stays("UPLOADING", "Uploading video", 40))

    message = await share(bot, slack, f"look <{CLIP_URL}>", [CLIP_URL])

    await slack.wait_for(lambda s: "Uploading 40%" in unfurled(s, message, CLIP_URL))
    assert "🎬 *Lobby door*" in unfurled(slack, message, CLIP_URL)
    assert f"Saved clip `{CLIP}`" in unfurled(slack, message, CLIP_URL)

    rhombus.set_clip(CLIP, percentComplete=80)
    await slack.wait_for(lambda s: "Uploading 80%" in unfurled(s, message, CLIP_URL))
    rhombus.set_clip(CLIP, status="COMPLETE", currentOperation="Complete", percentComplete=100)
    await slack.wait_for(lambda s: "✅ Ready" in unfurled(s, message, CLIP_URL))

    await wait_until(lambda: not bot.unfurls._live)  # noqa: SLF001
    assert [] == list(await UnfurlRows(bot.store).live())
    assert bot.scheduler.get_job(JOB_ID) is None
    unfurl = slack.surfaces.unfurl_of(message.channel, message.ts, CLIP_URL)
    assert 3 == len(unfurl.versions)


async def test_a_camera_link_unfurls_as_the_camera_at_that_moment(bot, slack):
    """A camera-at-a-time link shows the camera's name and the moment in the reader's zone."""
    url = f"{CONSOLE}/devices/cameras/{LOBBY_CAMERA}/?t=1764000000000"

    message = await share(bot, slack, url, [url])

    await slack.wait_for(lambda s: unfurled(s, message, url) != "")
    text = unfurled(slack, message, url)
    assert "📷 *Lobby* · Headquarters" in text
    assert "<!date^1764000000^{date_short_pretty} at {time}|2025-11-24T16:00:00Z>" in text
    assert ACTION_UNFURL_CLIP in text
    assert [] == list(await UnfurlRows(bot.store).live())


async def test_a_link_to_a_clip_rhombus_refuses(bot, slack):
    """A clip Rhombus does not know unfurls as Rhombus's reason, and is not followed."""
    message = await share(bot, slack, CLIP_URL, [CLIP_URL])

    await slack.wait_for(lambda s: unfurled(s, message, CLIP_URL) != "")
    assert f"Rhombus can't show clip `{CLIP}`" in unfurled(slack, message, CLIP_URL)
    assert [] == list(await UnfurlRows(bot.store).live())


async def test_other_links_are_left_alone(bot, slack):
    """A console page that is neither a clip nor a camera moment gets no unfurl call."""
    url = f"{CONSOLE}/settings/api-management"
    other = f"{CONSOLE}/devices/cameras/{LOBBY_CAMERA}/"

    await share(bot, slack, f"{url} {other}", [url, other])
    await share(bot, slack, CLIP_URL, [CLIP_URL])

    await slack.wait_for(lambda s: len(s.calls_to("chat.unfurl")) == 1)
    assert [CLIP_URL] == list(slack.calls_to("chat.unfurl")[0].args["unfurls"])


async def test_a_composer_preview_is_unfurled_once_and_not_followed(bot, slack, rhombus):
    """While the message is typed the unfurl goes by unfurl_id, and nothing is kept."""
    rhombus.add_clip(CLIP, script=stays("UPLOADING", "Uploading video", 40))
    message = slack.post_user_message("C0GENERAL", CLIP_URL)

    await send(bot, event_callback(link_shared(message, [CLIP_URL], source="composer")))

    await slack.wait_for(lambda s: len(s.surfaces.composer_unfurls) == 1)
    assert [] == list(await UnfurlRows(bot.store).live())


async def test_an_event_slack_retries_is_acted_on_once(bot, slack, rhombus):
    """The same event sent again with X-Slack-Retry-Num unfurls nothing more."""
    rhombus.add_clip(CLIP, script=stays("UPLOADING", "Uploading video", 40))
    message = slack.post_user_message("C0GENERAL", CLIP_URL)
    event = event_callback(link_shared(message, [CLIP_URL]))

    await send(bot, event)
    await send(bot, event, retry_num=1)
    await send(bot, event, retry_num=2)
    await share(bot, slack, CLIP_URL, [CLIP_URL])  # a new event, after the retries

    await wait_until(lambda: len(slack.calls_to("chat.unfurl")) >= 2)
    await wait_until(lambda: len(bot.unfurls._live) == 2)  # noqa: SLF001
    assert 2 == len(slack.calls_to("chat.unfurl"))


async def test_an_envelope_slack_retries_over_socket_mode_is_acted_on_once(
    make_settings, slack, rhombus
):
    """In Socket Mode a retried events_api envelope is acknowledged and not acted on again."""
    rhombus.add_clip(CLIP, script=stays("UPLOADING", "Uploading video", 40))
    bot = await Bot.start(make_settings(slack_app_token=APP_TOKEN))
    try:
        await slack.wait_for_socket_connection()
        message = slack.post_user_message("C0GENERAL", CLIP_URL)
        event = event_callback(link_shared(message, [CLIP_URL]))
        later = slack.post_user_message("C0GENERAL", CLIP_URL)

        await send_over_socket(slack, event)
        await send_over_socket(slack, event, retry_attempt=1)
        await send_over_socket(slack, event_callback(link_shared(later, [CLIP_URL])))

        await slack.wait_for(lambda s: unfurled(s, later, CLIP_URL) != "")
        # Stored before stopping: a Socket Mode listener still writing would be cut off.
        unfurls = bot.unfurls
        assert unfurls is not None
        await wait_until(lambda: len(unfurls._live) == 2)  # noqa: SLF001
        assert 2 == len(slack.calls_to("chat.unfurl"))
    finally:
        await bot.stop()


async def test_status_edits_go_before_unfurl_updates(bot, slack, rhombus):
    """While a status edit waits out a 429 the unfurl is not updated: the edit goes first."""
    rhombus.add_clip(CLIP, title="Lobby", script=stays("UPLOADING", "Uploading video", 20))
    rhombus.add_clip(OTHER, title="Dock", script=stays("UPLOADING", "Uploading video", 20))
    await clip_command(bot, slack, CLIP)
    await slack.wait_for(lambda s: len(status_messages(s)) == 1)
    (status,) = status_messages(slack)
    await stored(bot, status, TrackingState.FOLLOWING)
    other_url = f"{CONSOLE}/clips/{OTHER}"
    link = await share(bot, slack, other_url, [other_url])
    await slack.wait_for(lambda s: "Uploading 20%" in unfurled(s, link, other_url))
    slack.fail("chat.update", retry_after=2)

    rhombus.set_clip(CLIP, percentComplete=60)
    await slack.wait_for(lambda s: len(s.calls_to("chat.update")) == 1)
    rhombus.set_clip(OTHER, percentComplete=60)
    await slack.wait_for(lambda s: "Uploading 60%" in unfurled(s, link, other_url), timeout=10)

    edited = next(call.time for call in slack.calls_to("chat.update") if call.ok)
    updated = slack.calls_to("chat.unfurl")[-1].time
    assert edited < updated
    assert "60%" in status.text


async def test_a_restart_keeps_updating_the_unfurls_it_had(make_settings, slack, rhombus):
    """Live unfurls are stored: after a restart the same unfurl is updated to the end."""
    rhombus.add_clip(CLIP, script=stays("UPLOADING", "Uploading video", 40))
    bot = await Bot.start(make_settings())
    try:
        message = await share(bot, slack, CLIP_URL, [CLIP_URL])
        unfurls = bot.unfurls
        assert unfurls is not None
        await wait_until(lambda: len(unfurls._live) == 1)  # noqa: SLF001
    finally:
        await bot.stop()
    rhombus.set_clip(CLIP, percentComplete=90)

    bot = await Bot.start(make_settings())
    try:
        await slack.wait_for(lambda s: "Uploading 90%" in unfurled(s, message, CLIP_URL))
    finally:
        await bot.stop()


# --- Follow a clip of this ------------------------------------------------------------------------


def camera_url(at_ms: int) -> str:
    """A camera-at-a-time link to the lobby camera."""
    return f"{CONSOLE}/devices/cameras/{LOBBY_CAMERA}/?t={at_ms}"


async def camera_unfurl(bot, slack, at_ms, *, thread_ts=None):
    """A person posts a camera link (in a thread, if given); the unfurl the bot attached."""
    url = camera_url(at_ms)
    message = slack.post_user_message("C0GENERAL", url, thread_ts=thread_ts)
    await send(bot, event_callback(link_shared(message, [url])))
    await slack.wait_for(lambda s: unfurled(s, message, url) != "")
    return message, slack.surfaces.unfurl_of(message.channel, message.ts, url)


def follow_value(unfurl) -> str:
    """The value of the unfurl's Follow a clip of this button."""
    (element,) = [
        element
        for block in unfurl.blocks
        for element in block.get("elements", [])
        if element.get("action_id") == ACTION_UNFURL_CLIP
    ]
    return str(element["value"])


async def click(bot, slack, unfurl, value=None, **origin):
    """Press Follow a clip of this on the unfurl (or send `value` in its place)."""
    request = unfurl_action(
        ACTION_UNFURL_CLIP,
        follow_value(unfurl) if value is None else value,
        unfurl=unfurl,
        response_url=slack.response_url(),
        origin=Origin(**origin),
    )
    response = await send(bot, request)
    assert (200, "") == (response.status_code, response.text)


def bot_replies(slack, thread_ts):
    """The bot's messages in a thread of #general."""
    return [m for m in slack.thread_replies("C0GENERAL", thread_ts) if m.bot_id is not None]


async def test_follow_a_clip_of_this_makes_a_minute_around_it_in_the_links_thread(
    bot, slack, rhombus, clock
):
    """spliceV3 from 30 s before the moment for 60 s; its status is followed in the thread."""
    at_ms = (int(time.time()) - 600) * 1000 + 250
    message, unfurl = await camera_unfurl(bot, slack, at_ms)

    await click(bot, slack, unfurl)

    await slack.wait_for(lambda s: len(bot_replies(s, message.ts)) == 1)
    (body,) = rhombus.splicing.requests
    expected = ([f"{LOBBY_CAMERA}.v0", f"{LOBBY_CAMERA}.a0"], at_ms - 30_000, 60)
    assert expected == (body["deviceUuids"], body["startTimeMillis"], body["durationSec"])
    (status,) = bot_replies(slack, message.ts)
    assert "Made from Slack by <@U0ALICE> · Lobby" in shown_text(status)
    clock.advance(30)
    tracking = await finished(bot, status)
    assert (message.ts, "Ready") == (tracking.thread_ts, "Ready" if "Ready" in status.text else "")
    assert ([], []) == (status_messages(slack), slack.ephemerals)


async def test_a_link_posted_in_a_thread_gets_its_clip_in_that_thread(bot, slack):
    """The status message goes in the thread the link was posted in, not under the link."""
    root = slack.post_user_message("C0GENERAL", "what happened at the door?")
    at_ms = (int(time.time()) - 300) * 1000
    message, unfurl = await camera_unfurl(bot, slack, at_ms, thread_ts=root.ts)

    await click(bot, slack, unfurl)

    await slack.wait_for(lambda s: len(bot_replies(s, root.ts)) == 1)
    assert (root.ts, []) == (bot_replies(slack, root.ts)[0].thread_ts, status_messages(slack))
    assert [] == bot_replies(slack, message.ts)


async def test_someone_not_allowed_to_make_clips_is_told_and_nothing_is_posted(
    make_settings, slack, rhombus
):
    """With CLIP_CREATORS set, anyone else clicking gets an ephemeral answer; nothing is made."""
    running = await Bot.start(make_settings(clip_creators="U0BOB"))
    try:
        message, unfurl = await camera_unfurl(running, slack, (int(time.time()) - 600) * 1000)
        await click(running, slack, unfurl)
        await slack.wait_for(lambda s: len(s.ephemerals) == 1)
    finally:
        await running.stop()
    (answer,) = slack.ephemerals
    assert ("chat.postEphemeral", "C0GENERAL", "U0ALICE") == (
        answer.source,
        answer.channel,
        answer.user,
    )
    assert "not on the list of people who can make Rhombus clips" in answer.text
    assert ([], []) == (rhombus.splicing.requests, bot_replies(slack, message.ts))


@pytest.mark.parametrize(
    ("setup", "said"),
    [
        ("no footage", "recorded nothing"),
        ("rhombus refuses", "Rhombus refused to make the clip: Camera storage is full"),
        ("future", "has not happened yet"),
    ],
)
async def test_a_clip_that_cannot_be_made_is_explained_to_whoever_clicked(
    bot, slack, rhombus, setup, said
):
    """No footage, Rhombus's refusal or a moment to come: an ephemeral answer, nothing posted."""
    at_ms = (int(time.time()) + (3600 if setup == "future" else -600)) * 1000
    if setup == "no footage":
        rhombus.splicing.presence[LOBBY_CAMERA] = []
    if setup == "rhombus refuses":
        rhombus.splicing.error_msg = "Camera storage is full"
    message, unfurl = await camera_unfurl(bot, slack, at_ms)

    await click(bot, slack, unfurl, user_id="U0BOB", user_name="bob")

    await slack.wait_for(lambda s: len(s.ephemerals) == 1)
    (answer,) = slack.ephemerals
    assert ("C0GENERAL", "U0BOB") == (answer.channel, answer.user)
    assert said in answer.text
    assert ([], []) == (bot_replies(slack, message.ts), status_messages(slack))
    assert (setup == "rhombus refuses") == bool(rhombus.splicing.requests)


@pytest.mark.parametrize(
    "value",
    ["", "garbage", f"{LOBBY_CAMERA} <!channel>", f"{LOBBY_CAMERA} 1 2 3", "x" * 3000],
)
async def test_a_button_value_the_bot_did_not_write_is_refused(bot, slack, rhombus, value):
    """A hostile or garbage value is acknowledged and answered plainly; nothing is made."""
    message, unfurl = await camera_unfurl(bot, slack, (int(time.time()) - 600) * 1000)

    await click(bot, slack, unfurl, value)

    await slack.wait_for(lambda s: len(s.ephemerals) == 1)
    assert NOT_OURS == slack.ephemerals[0].text
    assert ([], []) == (rhombus.splicing.requests, bot_replies(slack, message.ts))


async def test_an_archived_camera_unfurls_without_the_button(bot, slack, rhombus):
    """A camera Rhombus no longer lists (archived) shows the moment alone, and offers no clip."""
    rhombus.set_camera(LOBBY_CAMERA, mummified=True)

    _, unfurl = await camera_unfurl(bot, slack, 1_764_000_000_000)

    text = json.dumps(unfurl.blocks, ensure_ascii=False)
    assert ("📷 *Rhombus camera*", False) == (
        text[text.index("📷") :][:18],
        ACTION_UNFURL_CLIP in text,
    )


async def test_follow_a_clip_of_this_over_socket_mode(make_settings, slack, rhombus):
    """Over Socket Mode the click is acknowledged within Slack's 3 s and the clip is made."""
    bot = await Bot.start(make_settings(slack_app_token=APP_TOKEN))
    try:
        await slack.wait_for_socket_connection()
        url = camera_url((int(time.time()) - 600) * 1000)
        message = slack.post_user_message("C0GENERAL", url)
        await send_over_socket(slack, event_callback(link_shared(message, [url])))
        await slack.wait_for(lambda s: unfurled(s, message, url) != "")
        unfurl = slack.surfaces.unfurl_of(message.channel, message.ts, url)
        request = unfurl_action(
            ACTION_UNFURL_CLIP,
            follow_value(unfurl),
            unfurl=unfurl,
            response_url=slack.response_url(),
        )

        await send_over_socket(slack, request)  # raises unless acknowledged within 3 s

        await slack.wait_for(lambda s: len(bot_replies(s, message.ts)) == 1)
    finally:
        await bot.stop()
    assert 1 == len(rhombus.splicing.requests)
