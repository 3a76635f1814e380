"""End to end: signed Slack requests into the real bot, Rhombus and Slack stand-ins on 127.0.0.1."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from bot.runtime import Bot
from bot.status_message import ACTION_OPEN, ACTION_REFRESH, ACTION_STOP
from bot.store import TrackingState
from standins.rhombus import Fault, completes, fails, goes_offline, stays
from standins.slack_requests import (
    Origin,
    block_action,
    message_shortcut,
    send_over_socket,
    slash_command,
)
from tests.helpers import (
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


async def test_clip_is_followed_until_complete(bot, slack, rhombus, clock):
    """/clip posts one status message, edits it as the clip advances, and announces the end."""
    rhombus.add_clip(CLIP, title="Lobby door", script=completes(10))

    started = time.monotonic()
    response = await clip_command(bot, slack, CLIP)
    assert time.monotonic() - started < 3

    assert "" == response.text
    await slack.wait_for(lambda s: len(status_messages(s)) == 1)
    (message,) = status_messages(slack)
    assert "Lobby door" in shown_text(message)
    assert message.unfurl_links is False
    assert message.unfurl_media is False

    clock.advance(15)  # uploading, half way
    await slack.wait_for(lambda _: "Uploading" in message.text)
    clock.advance(20)  # complete
    await slack.wait_for(lambda s: len(s.thread_replies("C0GENERAL", message.ts)) == 1)

    assert "Ready" in shown_text(message)
    (reply,) = slack.thread_replies("C0GENERAL", message.ts)
    assert "<@U0ALICE>" in reply.text
    assert 1 == len(status_messages(slack))
    assert [] == slack.ephemerals
    await bot.tracker.drain(2)
    tracking = await bot.store.find_by_message("C0GENERAL", message.ts)
    assert tracking is not None
    assert TrackingState.FINISHED == tracking.state
    assert not bot.tracker.is_following(tracking.id)


async def test_nothing_is_edited_when_nothing_changed(bot, slack, rhombus):
    """A clip that does not move is polled but its message is never edited."""
    rhombus.add_clip(CLIP, script=stays("RENDERING", "Processing video", 30))
    await clip_command(bot, slack, CLIP)
    await slack.wait_for(lambda s: len(status_messages(s)) == 1)
    calls_before = rhombus.calls["/api/event/getClipWithProgress"]

    await wait_until(lambda: rhombus.calls["/api/event/getClipWithProgress"] >= calls_before + 5)

    assert [] == slack.calls_to("chat.update")


async def test_percentage_never_moves_backwards(bot, slack, rhombus):
    """Within one operation a lower percentage from Rhombus does not move the bar back."""
    rhombus.add_clip(CLIP, script=stays("UPLOADING", "Uploading video", 60))
    await clip_command(bot, slack, CLIP)
    await slack.wait_for(lambda s: len(status_messages(s)) == 1)
    (message,) = status_messages(slack)

    rhombus.set_clip(CLIP, percentComplete=40)
    polls = rhombus.calls["/api/event/getClipWithProgress"]
    await wait_until(lambda: rhombus.calls["/api/event/getClipWithProgress"] >= polls + 3)

    assert "60%" in message.text
    assert [] == slack.calls_to("chat.update")


async def test_a_live_message_is_edited_when_its_bar_fills_another_segment(bot, slack, rhombus):
    """Percent moves within one tenth of the bar wait; a new segment or operation is shown."""
    rhombus.add_clip(CLIP, script=stays("UPLOADING", "Uploading video", 20))
    await clip_command(bot, slack, CLIP)
    await slack.wait_for(lambda s: len(status_messages(s)) == 1)
    (message,) = status_messages(slack)
    one = "/api/event/getClipWithProgress"

    rhombus.set_clip(CLIP, percentComplete=27)
    polls = rhombus.calls[one]
    await wait_until(lambda: rhombus.calls[one] >= polls + 3)
    assert [] == slack.calls_to("chat.update")
    assert "20%" in message.text

    rhombus.set_clip(CLIP, percentComplete=31)
    await slack.wait_for(lambda _: "31%" in message.text)
    rhombus.set_clip(
        CLIP, status="RENDERING", currentOperation="Processing video", percentComplete=2
    )
    await slack.wait_for(lambda _: "Rendering 2%" in message.text)

    assert 2 == len(slack.calls_to("chat.update"))


async def test_help_and_empty_command_answer_only_the_user(bot, slack):
    """`/clip` and `/clip help` answer with usage, ephemerally, and post nothing."""
    await clip_command(bot, slack, "")
    await clip_command(bot, slack, "help")

    await slack.wait_for(lambda s: len(s.ephemerals) == 2)
    assert all("/clip &lt;clip id or link&gt;" in e.text for e in slack.ephemerals)
    assert all("ephemeral" == e.response_type for e in slack.ephemerals)
    assert [] == status_messages(slack)


async def test_invalid_reference_is_explained(bot, slack):
    """A word that is not a clip id gets a specific ephemeral reason and no channel message."""
    await clip_command(bot, slack, "abc")

    await slack.wait_for(lambda s: len(s.ephemerals) == 1)
    assert "`abc` is not a clip id: clip ids are 22 characters" in slack.ephemerals[0].text
    assert [] == status_messages(slack)


async def test_unknown_clip_shows_rhombus_message(bot, slack):
    """Rhombus's `error: true` comes back to the person with its errorMsg."""
    await clip_command(bot, slack, CLIP)

    await slack.wait_for(lambda s: len(s.ephemerals) == 1)
    assert f"Rhombus can't find clip `{CLIP}`" in slack.ephemerals[0].text
    assert [] == status_messages(slack)


async def test_rhombus_down_is_explained(bot, slack, rhombus):
    """When Rhombus answers 503 the person is told, and nothing is posted."""
    rhombus.add_clip(CLIP)
    rhombus.inject(Fault(kind="server_error", status=503, times=-1))

    await clip_command(bot, slack, CLIP)

    await slack.wait_for(lambda s: len(s.ephemerals) == 1)
    assert "Rhombus is unreachable right now" in slack.ephemerals[0].text
    assert [] == status_messages(slack)


async def test_private_channel_asks_for_an_invite(bot, slack, rhombus):
    """Where the bot cannot post, the person is told to invite it; nothing is stored."""
    rhombus.add_clip(CLIP)

    await clip_command(bot, slack, CLIP, channel_id="G0PRIVATE", channel_name="secret")

    await slack.wait_for(lambda s: len(s.ephemerals) == 1)
    assert "/invite <@U0BOT>" in slack.ephemerals[0].text
    assert [] == list(await bot.store.unfinished())


async def test_same_clip_twice_links_to_the_first(bot, slack, rhombus):
    """Asking again for a followed clip answers with a link to its message instead of posting."""
    rhombus.add_clip(CLIP, script=stays("UPLOADING", "Uploading video", 10))
    await clip_command(bot, slack, CLIP)
    await slack.wait_for(lambda s: len(status_messages(s)) == 1)
    await stored(bot, status_messages(slack)[0], TrackingState.FOLLOWING)

    await clip_command(bot, slack, CLIP)

    await slack.wait_for(lambda s: len(s.ephemerals) == 1)
    (message,) = status_messages(slack)
    assert f"p{message.ts.replace('.', '')}" in slack.ephemerals[0].text
    assert "already being followed" in slack.ephemerals[0].text


async def test_several_clips_and_a_bad_one(bot, slack, rhombus):
    """Each valid clip gets its own message; the bad word is reported to the person."""
    rhombus.add_clip(CLIP, script=stays("UPLOADING", "Uploading video", 10))
    rhombus.add_clip(OTHER, script=stays("RENDERING", "Processing video", 20))

    await clip_command(bot, slack, f"{CLIP} nope {OTHER}")

    await slack.wait_for(lambda s: len(status_messages(s)) == 2 and len(s.ephemerals) == 1)
    assert "`nope` is not a clip id" in slack.ephemerals[0].text


async def test_restricted_clip_is_shown_only_to_the_asker(bot, slack, rhombus):
    """A PRIVATE clip is not posted in the channel; the asker gets it with the reason."""
    rhombus.add_clip(CLIP, title="HR incident", visibility="PRIVATE")

    await clip_command(bot, slack, CLIP)

    await slack.wait_for(lambda s: len(s.ephemerals) == 1)
    assert "is private in Rhombus, so I won't post it in the channel" in slack.ephemerals[0].text
    assert [] == status_messages(slack)


async def test_message_shortcut_follows_in_thread(bot, slack, rhombus):
    """The shortcut on a message with clip ids posts each status in that message's thread."""
    rhombus.add_clip(CLIP, script=stays("UPLOADING", "Uploading video", 10))
    source = slack.post_user_message("C0GENERAL", f"Can someone check {CLIP}? Thanks")

    request = message_shortcut(source, callback_id="track_clip", response_url=slack.response_url())
    assert 200 == (await send(bot, request)).status_code

    await slack.wait_for(lambda s: len(s.thread_replies("C0GENERAL", source.ts)) == 1)
    (reply,) = slack.thread_replies("C0GENERAL", source.ts)
    assert reply.bot_id is not None
    assert "Uploading" in reply.text


async def test_message_shortcut_without_clips(bot, slack):
    """The shortcut on a message without clips answers ephemerally."""
    source = slack.post_user_message("C0GENERAL", "lunch?")

    await send(
        bot, message_shortcut(source, callback_id="track_clip", response_url=slack.response_url())
    )

    await slack.wait_for(lambda s: len(s.ephemerals) == 1)
    assert "I found no Rhombus clip in that message" in slack.ephemerals[0].text


async def test_stop_button_says_who_stopped(bot, slack, rhombus):
    """Stop updates ends following, the message says who, and the job is gone."""
    rhombus.add_clip(CLIP, script=stays("UPLOADING", "Uploading video", 10))
    await clip_command(bot, slack, CLIP)
    await slack.wait_for(lambda s: len(status_messages(s)) == 1)
    (message,) = status_messages(slack)
    await stored(bot, message, TrackingState.FOLLOWING)

    bob = Origin(user_id="U0BOB", user_name="bob")
    await send(
        bot,
        block_action(
            ACTION_STOP, CLIP, message=message, response_url=slack.response_url(), origin=bob
        ),
    )

    await slack.wait_for(lambda _: "<@U0BOB>" in shown_text(message))
    tracking = await finished(bot, message)
    assert not bot.tracker.is_following(tracking.id)
    assert '"clip_stop"' not in json.dumps(message.blocks)


async def test_refresh_button_polls_now(make_settings, slack, rhombus):
    """Refresh shows the new state at once, long before the next scheduled poll."""
    bot = await Bot.start(make_settings(poll_interval_seconds=600))
    try:
        rhombus.add_clip(CLIP, script=stays("UPLOADING", "Uploading video", 10))
        await clip_command(bot, slack, CLIP)
        await slack.wait_for(lambda s: len(status_messages(s)) == 1)
        (message,) = status_messages(slack)
        await stored(bot, message, TrackingState.FOLLOWING)
        rhombus.set_clip(
            CLIP, status="RENDERING", currentOperation="Processing video", percentComplete=5
        )

        await send(
            bot,
            block_action(ACTION_REFRESH, CLIP, message=message, response_url=slack.response_url()),
        )

        await slack.wait_for(lambda _: "Rendering" in message.text)
        rhombus.set_clip(CLIP, percentComplete=55)  # and again: Refresh asks Rhombus each time
        await send(
            bot,
            block_action(ACTION_REFRESH, CLIP, message=message, response_url=slack.response_url()),
        )
        await slack.wait_for(lambda _: "Rendering 55%" in message.text)
    finally:
        await bot.stop()


async def test_a_clip_the_feed_saw_end_is_polled_at_once(make_settings, slack, rhombus):
    """Told that a clip ended, the tracker polls it now rather than at its next turn."""
    bot = await Bot.start(make_settings(poll_interval_seconds=600))
    try:
        rhombus.add_clip(CLIP, script=stays("RENDERING", "Processing video", 90))
        await clip_command(bot, slack, CLIP)
        await slack.wait_for(lambda s: len(status_messages(s)) == 1)
        (message,) = status_messages(slack)
        await stored(bot, message, TrackingState.FOLLOWING)
        rhombus.set_clip(CLIP, status="COMPLETE", percentComplete=100)

        bot.tracker.poll_now({CLIP})

        await slack.wait_for(lambda s: len(s.thread_replies("C0GENERAL", message.ts)) == 1)
        assert "Ready" in shown_text(message)
    finally:
        await bot.stop()


async def test_open_button_is_acknowledged(bot, slack, rhombus):
    """The link button's click is acknowledged with 200 and changes nothing."""
    rhombus.add_clip(CLIP, script=stays("UPLOADING", "Uploading video", 10))
    await clip_command(bot, slack, CLIP)
    await slack.wait_for(lambda s: len(status_messages(s)) == 1)
    (message,) = status_messages(slack)

    response = await send(
        bot, block_action(ACTION_OPEN, CLIP, message=message, response_url=slack.response_url())
    )

    assert 200 == response.status_code


async def test_failed_clip_ends_with_reason_and_reply(bot, slack, rhombus, clock):
    """A clip that fails ends with the reason in the message and a reply to the asker."""
    rhombus.add_clip(CLIP, title="Dock", script=fails(5))
    await clip_command(bot, slack, CLIP)
    await slack.wait_for(lambda s: len(status_messages(s)) == 1)
    (message,) = status_messages(slack)

    clock.advance(20)

    await slack.wait_for(lambda s: len(s.thread_replies("C0GENERAL", message.ts)) == 1)
    assert "Failed" in message.text
    (reply,) = slack.thread_replies("C0GENERAL", message.ts)
    assert "<@U0ALICE>" in reply.text
    assert "failed" in reply.text


async def test_deleted_message_stops_following(bot, slack, rhombus, clock, caplog):
    """When the status message is deleted in Slack, following stops without errors."""
    rhombus.add_clip(CLIP, script=completes(5))
    await clip_command(bot, slack, CLIP)
    await slack.wait_for(lambda s: len(status_messages(s)) == 1)
    (message,) = status_messages(slack)
    tracking = await stored(bot, message)

    slack.delete_message("C0GENERAL", message.ts)
    clock.advance(6)

    await finished(bot, message)
    assert not bot.tracker.is_following(tracking.id)
    (gone,) = [r for r in caplog.records if "the message is gone" in r.getMessage()]
    expected = {"tracking": tracking.id, "team": "T0SIM", "channel": "C0GENERAL", "clip": CLIP}
    assert expected == {key: getattr(gone, key) for key in expected}


async def test_stuck_offline_gives_up(make_settings, slack, rhombus, clock):
    """A clip stuck OFFLINE ends with "no progress" after the give-up time."""
    bot = await Bot.start(make_settings(give_up_minutes=0.01))
    try:
        rhombus.add_clip(CLIP, script=goes_offline(1))
        clock.advance(5)
        await clip_command(bot, slack, CLIP)
        await slack.wait_for(lambda s: len(status_messages(s)) == 1)
        (message,) = status_messages(slack)

        await slack.wait_for(lambda _: "no progress" in shown_text(message))

        assert [] == slack.thread_replies("C0GENERAL", message.ts)
    finally:
        await bot.stop()


async def test_restart_continues_the_same_message(make_settings, slack, rhombus, clock):
    """After a restart the bot keeps editing the message it posted, and posts no other."""
    rhombus.add_clip(CLIP, script=completes(10))
    first = await Bot.start(make_settings())
    await clip_command(first, slack, CLIP)
    await slack.wait_for(lambda s: len(status_messages(s)) == 1)
    await first.stop()

    clock.advance(35)
    second = await Bot.start(make_settings())
    try:
        (message,) = status_messages(slack)
        await slack.wait_for(lambda s: len(s.thread_replies("C0GENERAL", message.ts)) == 1)
        assert "Ready" in message.text
        assert 1 == len(slack.calls_to("chat.postMessage")) - 1  # the status, then the reply
    finally:
        await second.stop()


async def test_socket_mode(make_settings, slack, rhombus):
    """In Socket Mode, /clip arrives over the WebSocket and the status is posted the same way."""
    rhombus.add_clip(CLIP, script=stays("UPLOADING", "Uploading video", 10))
    bot = await Bot.start(make_settings(slack_app_token="xapp-test-app-token-0123456789"))
    try:
        await slack.wait_for_socket_connection()
        ack = await send_over_socket(slack, slash_command(CLIP, response_url=slack.response_url()))
        assert ack["envelope_id"]
        await slack.wait_for(lambda s: len(status_messages(s)) == 1)
        async with httpx.AsyncClient() as client:
            assert 200 == (await client.get(f"http://127.0.0.1:{bot.port}/healthz")).status_code
            assert (
                404 == (await client.post(f"http://127.0.0.1:{bot.port}/slack/events")).status_code
            )
    finally:
        await bot.stop()


async def test_bad_signatures_are_refused(bot, slack, rhombus):
    """Requests with no, a wrong or an old signature get 401 and do nothing."""
    rhombus.add_clip(CLIP)
    for signature in ("missing", "wrong", "old"):
        request = slash_command(CLIP, response_url=slack.response_url())
        response = await send(bot, request, signature=signature)
        assert 401 == response.status_code

    async with httpx.AsyncClient() as client:
        garbage = await client.post(
            f"http://127.0.0.1:{bot.port}/slack/events", content=b"\xff\x00not a form"
        )
    assert 401 == garbage.status_code
    assert [] == slack.ephemerals
    assert [] == status_messages(slack)


async def test_healthz(bot):
    """/healthz answers 200 with the scheduler and database up."""
    async with httpx.AsyncClient() as client:
        response = await client.get(f"http://127.0.0.1:{bot.port}/healthz")

    assert 200 == response.status_code
    assert {"status": "ok", "scheduler": True, "database": True} == response.json()


async def test_healthz_reports_a_stopped_scheduler(bot):
    """/healthz answers 503 once the scheduler is no longer running."""
    bot.scheduler.shutdown(wait=False)

    async with httpx.AsyncClient() as client:
        response = await client.get(f"http://127.0.0.1:{bot.port}/healthz")

    assert 503 == response.status_code
    assert {"status": "unavailable", "scheduler": False, "database": True} == response.json()


async def test_at_most_five_clips_per_command(bot, slack, rhombus):
    """Seven clips in one command: five are followed and the person is told about the rest."""
    ids = [f"Clip{n}{'x' * 17}" for n in range(7)]
    for clip_id in ids:
        rhombus.add_clip(clip_id, script=stays("UPLOADING", "Uploading video", 10))

    await clip_command(bot, slack, " ".join(ids))

    await slack.wait_for(lambda s: len(s.ephemerals) == 1)
    assert 5 == len(status_messages(slack))
    assert "I follow at most 5 clips at once; skipped 2." in slack.ephemerals[0].text


async def test_allow_lists_refuse_politely(make_settings, slack, rhombus):
    """Outside the allowed channels, or for someone not allowed, /clip refuses ephemerally."""
    rhombus.add_clip(CLIP)
    bot = await Bot.start(
        make_settings(allowed_channel_ids="C0RANDOM", allowed_user_ids="U0ALICE,U0BOB")
    )
    try:
        await clip_command(bot, slack, CLIP)
        await clip_command(bot, slack, CLIP, channel_id="C0RANDOM", user_id="U0EVE")

        await slack.wait_for(lambda s: len(s.ephemerals) == 2)
        assert "clips can't be followed in this channel" in slack.ephemerals[0].text
        assert "not on the list of people who can follow" in slack.ephemerals[1].text
        assert [] == status_messages(slack) + status_messages(slack, "C0RANDOM")
    finally:
        await bot.stop()


async def test_rhombus_outage_is_shown_and_recovers(bot, slack, rhombus, clock):
    """While Rhombus fails the message says so; once it answers again the clip runs to the end."""
    rhombus.add_clip(CLIP, script=completes(10))
    await clip_command(bot, slack, CLIP)
    await slack.wait_for(lambda s: len(status_messages(s)) == 1)
    (message,) = status_messages(slack)

    rhombus.inject(Fault(kind="server_error", status=503, times=-1))
    await slack.wait_for(lambda _: "Rhombus unreachable, retrying" in shown_text(message))
    rhombus.clear_faults()
    clock.advance(35)

    await slack.wait_for(lambda s: len(s.thread_replies("C0GENERAL", message.ts)) == 1, timeout=10)
    assert "Ready" in message.text
    assert "unreachable" not in shown_text(message)


@pytest.mark.slow
async def test_slack_rate_limit_waits_and_sends_the_newest_state(bot, slack, rhombus, clock):
    """A 429 on chat.update pauses edits for Retry-After, then the newest state goes out."""
    rhombus.add_clip(CLIP, script=completes(10))
    await clip_command(bot, slack, CLIP)
    await slack.wait_for(lambda s: len(status_messages(s)) == 1)
    (message,) = status_messages(slack)
    slack.fail("chat.update", status=429, retry_after=1)

    clock.advance(15)
    await slack.wait_for(lambda s: any(c.status == 429 for c in s.calls_to("chat.update")))
    clock.advance(20)

    await slack.wait_for(lambda s: len(s.thread_replies("C0GENERAL", message.ts)) == 1)
    assert "Ready" in message.text
    updates = slack.calls_to("chat.update")
    limited = next(c for c in updates if c.status == 429)
    after = [c for c in updates if c.time > limited.time]
    assert after
    assert after[0].time - limited.time >= 1.0


async def test_a_short_rhombus_rate_limit_is_waited_out_for_a_lookup(bot, slack, rhombus):
    """A 1 s Retry-After on the lookup is waited out: the clip is posted, no "try again"."""
    rhombus.add_clip(CLIP, script=stays("UPLOADING", "Uploading video", 10))
    rhombus.inject(Fault(kind="rate_limit", retry_after=1))

    await clip_command(bot, slack, CLIP)

    await slack.wait_for(lambda s: len(status_messages(s)) == 1)
    assert [] == slack.ephemerals
