"""Two replicas in one process on PostgreSQL: each workspace's work goes with its shard.

The replica holding the workspace's shard keeps its link unfurls up to date, delivers its
videos and knows which of its clips were made from Slack; a handover moves all of it.
"""

from __future__ import annotations

import asyncio
import time

import asyncpg
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bot.runtime import Bot
from bot.shards import LOCK_SPACE, SHARDS, shard_of
from bot.status_message import ACTION_RETRY, ACTION_STOP
from standins.rhombus import RENDER_FAILED, Fault, Step, completes, fails, media_bytes, stays
from standins.slack_requests import (
    block_action,
    event_callback,
    link_shared,
    send_over_socket,
    slash_command,
)
from tests.helpers import (
    APP_TOKEN,
    CLIP,
    clip_command,
    finished,
    send,
    shown_text,
    status_messages,
    wait_until,
)

TEAM = "T0SIM"  # the stand-in's one workspace
CONSOLE = "https://console.rhombussystems.com"
CLIP_URL = f"{CONSOLE}/clips/{CLIP}"
MADE_LINE = "Made from Slack by <@U0ALICE>"
MEDIA_PATH = f"/media/metadata/us-west-2/{CLIP}.mp4"

pytestmark = pytest.mark.slow  # two replicas and a handover each: seconds, not milliseconds


@pytest.fixture
async def pair(make_settings, slack, postgres_url):
    """Starts two replicas with tokens of their own; (holder of the workspace, the other)."""
    started: list[Bot] = []

    async def start(**overrides):
        for name in ("a", "b"):
            token = f"xoxb-replica-{name}"
            slack.add_bot_token(token)
            started.append(
                await Bot.start(
                    make_settings(database_url=postgres_url, slack_bot_token=token, **overrides)
                )
            )
        await wait_until(lambda: sum(len(held(bot)) for bot in started) == SHARDS, 10.0)
        await wait_until(lambda: all(len(held(bot)) == SHARDS // 2 for bot in started), 10.0)
        holder = next(bot for bot in started if bot.shards and bot.shards.holds(TEAM))
        return holder, next(bot for bot in started if bot is not holder)

    yield start
    for bot in started:
        await bot.stop()


def held(bot: Bot) -> frozenset[int]:
    """The shards a replica holds."""
    assert bot.shards is not None
    return bot.shards.held


async def cut_lock_connection(postgres_url: str) -> None:
    """pg_terminate_backend on the session holding the workspace's shard."""
    connection = await asyncpg.connect(postgres_url)
    try:
        terminated = await connection.fetch(
            "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' "
            "AND classid = $1::int::oid AND objid = $2 AND objsubid = 2 "
            "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            LOCK_SPACE,
            shard_of(TEAM),
        )
    finally:
        await connection.close()
    assert [(True,)] == [tuple(row) for row in terminated]


def unfurled(slack, message, url):
    """The unfurl of `url` in `message` as text, or "" while there is none."""
    unfurl = slack.surfaces.unfurl_of(message.channel, message.ts, url)
    return str(unfurl.blocks) if unfurl else ""


def calls_by(slack, token, method):
    """The successful calls of `method` made with `token`."""
    return [c for c in slack.calls_to(method) if c.ok and c.token == token]


async def test_a_clip_made_anywhere_says_so_on_whichever_replica_holds_its_workspace(
    pair, slack, clock
):
    """Made on the other replica, then handed over: every edit still says it was made from Slack."""
    holder, other = await pair()
    await clip_command(other, slack, "new Lobby -10m 1m Door")
    await slack.wait_for(lambda s: len(status_messages(s)) == 1)
    (message,) = status_messages(slack)
    assert MADE_LINE in shown_text(message)
    clock.advance(12)  # the holder's edits (not the other's) move it on
    await slack.wait_for(lambda s: calls_by(s, holder.slack.token, "chat.update"))
    assert MADE_LINE in shown_text(message)

    await holder.stop()  # the other takes the workspace; the holder had recalled the made clip
    await clip_command(other, slack, "new Lobby -20m 1m Gate")
    await slack.wait_for(lambda s: len(status_messages(s)) == 2)
    clock.advance(40)
    await slack.wait_for(lambda s: all("Ready" in m.text for m in status_messages(s)))

    for shown in status_messages(slack):
        assert all(MADE_LINE in str(r.blocks) for r in shown.revisions), shown.revisions


async def test_a_clip_made_on_the_holder_keeps_its_line_on_the_next_holder(pair, slack, clock):
    """The holder made it, then stopped: the next holder learns it was made from Slack."""
    holder, other = await pair()
    await clip_command(holder, slack, "new Lobby -10m 1m Door")
    await slack.wait_for(lambda s: len(status_messages(s)) == 1)
    (message,) = status_messages(slack)

    await holder.stop()
    await wait_until(lambda: other.tracker.live_count == 1)
    clock.advance(40)
    await slack.wait_for(lambda _: "Ready" in message.text)

    assert calls_by(slack, other.slack.token, "chat.update")
    assert all(MADE_LINE in str(r.blocks) for r in message.revisions), message.revisions


async def test_a_link_shared_to_the_other_replica_is_kept_up_to_date_by_the_holder(
    pair, slack, rhombus
):
    """link_shared on the other replica: the holder updates the unfurl, then its successor."""
    holder, other = await pair()
    rhombus.add_clip(CLIP, title="Lobby door", script=stays("UPLOADING", "Uploading video", 40))
    message = slack.post_user_message("C0GENERAL", f"look <{CLIP_URL}>")
    await send(other, event_callback(link_shared(message, [CLIP_URL])))
    await slack.wait_for(lambda s: "Uploading 40%" in unfurled(s, message, CLIP_URL))
    assert other.unfurls is not None
    assert holder.unfurls is not None
    await wait_until(lambda: len(holder.unfurls._live) == 1)  # noqa: SLF001
    assert {} == other.unfurls._live  # noqa: SLF001

    rhombus.set_clip(CLIP, percentComplete=60)
    await slack.wait_for(lambda s: "Uploading 60%" in unfurled(s, message, CLIP_URL))
    assert calls_by(slack, holder.slack.token, "chat.unfurl")
    await holder.stop()
    await wait_until(lambda: len(other.unfurls._live) == 1)  # noqa: SLF001
    rhombus.set_clip(CLIP, percentComplete=90)
    # A workspace taken over edits at the steady rate, as if its last holder had spent the
    # rolling minute: a progress update waits about 11 s for its room.
    await slack.wait_for(lambda s: "Uploading 90%" in unfurled(s, message, CLIP_URL), 20.0)

    versions = slack.surfaces.unfurl_of(message.channel, message.ts, CLIP_URL).versions
    shown = [str(version) for version in versions]
    assert [1, 1, 1] == [sum(f"{p}%" in v for v in shown) for p in (40, 60, 90)], shown
    assert other.slack.token == [c for c in slack.calls_to("chat.unfurl") if c.ok][-1].token


async def test_a_delivery_under_way_moves_with_the_workspace(
    pair, slack, rhombus, clock, postgres_url
):
    """The holder loses its lock mid-download: it stops, the new holder sends the video once."""
    rhombus.inject(Fault("slow", path=MEDIA_PATH, delay=30.0))
    holder, other = await pair(deliver_video=True, deliver_thumbnail=False)
    rhombus.add_clip(CLIP, title="Lobby door", script=completes(10), durationSec=4)
    await clip_command(holder, slack, CLIP)
    await slack.wait_for(lambda s: len(status_messages(s)) == 1)
    (message,) = status_messages(slack)
    clock.advance(35)
    await wait_until(lambda: rhombus.calls[MEDIA_PATH] == 1)
    assert holder.deliveries is not None
    assert other.deliveries is not None
    assert 1 == len(holder.deliveries._running)  # noqa: SLF001

    rhombus.clear_faults()
    await cut_lock_connection(postgres_url)
    await wait_until(lambda: not holder.deliveries._running)  # noqa: SLF001
    await slack.wait_for(lambda s: len(s.shared_files("C0GENERAL", message.ts)) == 1)
    await other.deliveries.idle()

    (file,) = slack.shared_files("C0GENERAL", message.ts)
    assert media_bytes(CLIP, 1_000_000) == file.data
    assert 1 == len(slack.thread_replies("C0GENERAL", message.ts))
    assert 1 == len([c for c in slack.calls_to("files.completeUploadExternal") if c.ok])


async def handovers_scraped(bot: Bot) -> dict[str, float]:
    """The handover-duration histogram's samples on the replica's /metrics, by name and bound."""
    async with httpx.AsyncClient(trust_env=False, timeout=2.0) as client:
        scraped = (await client.get(f"http://127.0.0.1:{bot.port}/metrics")).text
    return {
        sample.name.removeprefix("clipbot_handover_seconds")
        + sample.labels.get("le", ""): sample.value
        for family in text_string_to_metric_families(scraped)
        for sample in family.samples
        if sample.name.startswith("clipbot_handover_seconds")
    }


async def test_how_long_each_take_over_took_is_in_metrics(pair, slack, rhombus):
    """Each take-over, from the lock taken to its trackings followed, is one histogram sample."""
    holder, other = await pair()
    rhombus.add_clip(CLIP, script=stays("UPLOADING", "Uploading video", 40))
    await clip_command(other, slack, CLIP)
    await wait_until(lambda: holder.tracker.live_count == 1)
    before = await handovers_scraped(other)

    await holder.stop()
    deadline = time.monotonic() + 5.0
    while (after := await handovers_scraped(other))["_count"] == before["_count"]:
        assert time.monotonic() < deadline, "no take-over observed"
        await asyncio.sleep(0.02)

    assert 1 == other.tracker.live_count
    assert 1 == after["_count"] - before["_count"]
    assert 0 < after["_sum"] - before["_sum"] < 1.0
    assert after["_bucket1.0"] - before["_bucket1.0"] == 1


async def test_retry_pressed_on_the_other_replica_is_followed_by_the_holder(
    pair, slack, rhombus, clock
):
    """Retry of a failed clip, pressed on the other replica: the holder follows it to Ready."""
    holder, other = await pair()
    rhombus.splicing.script = fails(1)
    rhombus.splicing.retry_script = (
        Step(0, "FAILED", RENDER_FAILED, 60),
        *(step._replace(after_seconds=step.after_seconds + 2) for step in completes(3)),
    )
    await clip_command(holder, slack, "new Lobby -10m 1m Door")
    await slack.wait_for(lambda s: len(status_messages(s)) == 1)
    (message,) = status_messages(slack)
    clock.advance(10)
    await finished(other, message)  # stored as failed, as the other replica reads it
    await slack.wait_for(lambda _: ACTION_RETRY in shown_text(message))

    click = block_action(ACTION_RETRY, "x", message=message, response_url=slack.response_url())
    assert 200 == (await send(other, click)).status_code
    await wait_until(lambda: holder.tracker.live_count == 1)
    assert 0 == other.tracker.live_count
    polls = rhombus.calls["/api/event/getClipWithProgress"]
    await wait_until(lambda: rhombus.calls["/api/event/getClipWithProgress"] >= polls + 3)
    assert 1 == holder.tracker.live_count  # FAILED for a moment is not the end
    clock.advance(30)
    await slack.wait_for(lambda _: "Ready" in message.text)
    assert 1 == len(rhombus.splicing.retried)
    assert not [e for e in slack.ephemerals if "can't" in e.text], slack.ephemerals


async def test_a_replica_starting_mid_splice_leaves_the_request_to_whoever_is_making_it(
    pair, slack, rhombus, make_settings, postgres_url
):
    """Another replica starts while spliceV3 is under way: nobody is told the bot restarted."""
    holder, _ = await pair(rhombus_timeout_seconds=6.0)
    rhombus.inject(Fault("slow", path="/api/video/spliceV3", delay=3.0))
    await clip_command(holder, slack, "new Lobby -10m 1m Door")
    await wait_until(lambda: rhombus.calls["/api/video/spliceV3"] == 1)
    slack.add_bot_token("xoxb-replica-c")
    third = await Bot.start(
        make_settings(database_url=postgres_url, slack_bot_token="xoxb-replica-c")
    )
    try:
        await slack.wait_for(lambda s: len(status_messages(s)) == 1, 10.0)
        assert not [e.text for e in slack.ephemerals if "restarted" in e.text]
    finally:
        await third.stop()


async def test_in_socket_mode_either_replica_takes_commands_and_clicks(pair, slack, rhombus):
    """Two replicas over Socket Mode: whichever Slack sends a /clip or a Stop to, it is done."""
    holder, other = await pair(slack_app_token=APP_TOKEN)
    await slack.wait_for(lambda s: s.socket_connections == 2)
    rhombus.add_clip(CLIP, title="Lobby door", script=stays("UPLOADING", "Uploading video", 40))
    ack = await send_over_socket(slack, slash_command(CLIP, response_url=slack.response_url()))
    assert "envelope_id" in ack
    await slack.wait_for(lambda s: len(status_messages(s)) == 1)
    await wait_until(lambda: holder.tracker.live_count == 1)
    assert 0 == other.tracker.live_count
    (message,) = status_messages(slack)
    stop = block_action(ACTION_STOP, CLIP, message=message, response_url=slack.response_url())
    await send_over_socket(slack, stop)
    await slack.wait_for(lambda _: "Stopped" in message.text or "stopped" in message.text)
    await wait_until(lambda: holder.tracker.live_count == 0)
