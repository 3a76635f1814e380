"""Rhombus links that unfurl, through the real endpoint and Socket Mode, against the stand-ins."""

from __future__ import annotations

import json

from bot.runtime import Bot
from bot.store import TrackingState
from bot.unfurl_rows import UnfurlRows
from bot.unfurls import JOB_ID
from standins.rhombus import LOBBY_CAMERA, stays
from standins.slack_requests import event_callback, link_shared, send_over_socket
from tests.helpers import (
    APP_TOKEN,
    CLIP,
    OTHER,
    clip_command,
    send,
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
    assert "📷 *Lobby*" in text
    assert "<!date^1764000000^{date_short_pretty} at {time}|2025-11-24T16:00:00Z>" in text
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
