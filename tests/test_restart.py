"""The bot as a real process: killed, stopped and restarted against the stand-ins on 127.0.0.1."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import sqlite3
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pytest

from bot.blocks import RenderedMessage
from bot.delivery_rows import DeliveryRows, DeliveryState
from bot.runtime import Bot
from bot.store import Store, Tracking, TrackingState
from standins.rhombus import completes, stays
from standins.slack import Message
from standins.slack_requests import post, slash_command
from tests.helpers import SIGNING_SECRET, base_env, stored, wait_until
from tests.processes import (
    WAIT_TIMEOUT,
    BotProcess,
    BotProcesses,
    finished,
    kill_when,
    shown_text,
    status_messages,
)

if TYPE_CHECKING:
    from pathlib import Path

    from standins.rhombus import Exchange, ManualClock, RhombusSimulator
    from standins.slack import Call, SlackSimulator

CLIP = "LobbyClip0123456789abc"
CHANNEL = "C0GENERAL"


@pytest.mark.slow
async def test_kill_9_between_posting_and_storing(
    bots: BotProcesses,
    slack: SlackSimulator,
    rhombus: RhombusSimulator,
    clock: ManualClock,
    database_url: str,
) -> None:
    """Killed between Slack taking the status post and storing it: found again, not re-posted."""
    rhombus.add_clip(CLIP, title="Lobby door", script=completes(10))
    first = await bots.start()
    kill_when(slack, first, lambda c: c.method == "chat.postMessage")
    await clip_command(first, slack)
    assert -signal.SIGKILL == await bots.exit_status(first)
    (message,) = status_messages(slack)
    clock.advance(35)  # complete

    await bots.start()

    await bots.wait_for(slack, lambda s: len(s.thread_replies(CHANNEL, message.ts)) == 1)
    await finished(database_url, message, bots)
    assert "Ready" in shown_text(message), bots.output()
    assert [message] == status_messages(slack)
    assert 1 == len(top_level_posts(slack)), bots.output()


@pytest.mark.slow
async def test_kill_9_after_the_final_reply_does_not_repeat_it(
    bots: BotProcesses,
    slack: SlackSimulator,
    rhombus: RhombusSimulator,
    clock: ManualClock,
    database_url: str,
) -> None:
    """Killed right after the thread reply went out: the next process does not announce again."""
    rhombus.add_clip(CLIP, title="Lobby door", script=completes(10))
    first = await bots.start()
    await clip_command(first, slack)
    await bots.wait_for(slack, lambda s: len(status_messages(s)) == 1)
    (message,) = status_messages(slack)
    kill_when(
        slack, first, lambda c: c.method == "chat.postMessage" and bool(c.args.get("thread_ts"))
    )
    clock.advance(35)
    assert -signal.SIGKILL == await bots.exit_status(first)

    await bots.start()

    await finished(database_url, message, bots)
    assert "Ready" in shown_text(message), bots.output()
    assert 1 == len(slack.thread_replies(CHANNEL, message.ts))


@pytest.mark.slow
async def test_kill_9_mid_clip_resumes_the_same_message(
    bots: BotProcesses,
    slack: SlackSimulator,
    rhombus: RhombusSimulator,
    clock: ManualClock,
    database_url: str,
) -> None:
    """After SIGKILL a new process edits the same message to Ready, replies once, posts no other."""
    rhombus.add_clip(CLIP, title="Lobby door", script=completes(10))
    first = await bots.start()
    await clip_command(first, slack)
    await bots.wait_for(slack, lambda s: len(status_messages(s)) == 1)
    (message,) = status_messages(slack)
    clock.advance(15)  # uploading, half way
    await bots.wait_for(slack, lambda s: len(updates_of(s, message)) >= 1)

    first.process.kill()
    assert -signal.SIGKILL == await bots.exit_status(first)
    edits_before = len(slack.calls_to("chat.update"))
    clock.advance(20)  # complete
    await bots.start()

    await bots.wait_for(slack, lambda s: len(s.thread_replies(CHANNEL, message.ts)) == 1)
    await finished(database_url, message, bots)
    assert "Ready" in shown_text(message), bots.output()
    later_edits = slack.calls_to("chat.update")[edits_before:]
    assert len(later_edits) >= 1, bots.output()
    assert {(CHANNEL, message.ts)} == {(c.args["channel"], c.args["ts"]) for c in later_edits}
    assert [message] == status_messages(slack)
    assert 1 == len(top_level_posts(slack)), bots.output()
    assert 1 == len(slack.thread_replies(CHANNEL, message.ts))


@pytest.mark.slow
async def test_sigterm_exits_cleanly_and_a_restart_resumes(
    bots: BotProcesses,
    slack: SlackSimulator,
    rhombus: RhombusSimulator,
    clock: ManualClock,
    database_url: str,
) -> None:
    """SIGTERM ends the process with status 0 within seconds; the next start finishes the clip."""
    rhombus.add_clip(CLIP, title="Lobby door", script=completes(10))
    first = await bots.start()
    await clip_command(first, slack)
    await bots.wait_for(slack, lambda s: len(status_messages(s)) == 1)
    (message,) = status_messages(slack)

    first.process.send_signal(signal.SIGTERM)
    assert 0 == await bots.exit_status(first, timeout=5.0), bots.output()
    assert "Traceback" not in first.output()
    clock.advance(35)  # complete
    await bots.start()

    await bots.wait_for(slack, lambda s: len(s.thread_replies(CHANNEL, message.ts)) == 1)
    await finished(database_url, message, bots)
    assert "Ready" in shown_text(message), bots.output()
    assert [message] == status_messages(slack)
    assert 1 == len(top_level_posts(slack)), bots.output()


async def test_no_credentials_names_them_and_points_to_the_demo(tmp_path: Path) -> None:
    """With an empty environment the bot exits 2, naming what is missing and how to try the demo."""
    status, stderr = await run_to_exit(base_env(), tmp_path)

    assert 2 == status, stderr
    assert "SLACK_BOT_TOKEN" in stderr
    assert "RHOMBUS_API_KEY" in stderr
    assert "make demo" in stderr
    assert "Traceback" not in stderr


async def test_database_folder_missing_is_one_clear_line(
    bot_env: dict[str, str], tmp_path: Path
) -> None:
    """A DATABASE_URL in a folder that does not exist ends the bot with one line naming it."""
    missing = tmp_path / "no-such-folder"
    env = {**bot_env, "DATABASE_URL": f"sqlite:///{missing / 'bot.db'}", "PORT": "0"}

    status, stderr = await run_to_exit(env, tmp_path)

    assert 2 == status, stderr
    assert "Traceback" not in stderr
    assert 1 == len(stderr.strip().splitlines()), stderr
    assert f"the folder {missing} does not exist" in stderr


async def run_to_exit(env: dict[str, str], cwd: Path) -> tuple[int, str]:
    """Run `python -m bot` until it exits by itself; its exit status and stderr."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        env=env,
        cwd=cwd,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        _, stderr = await asyncio.wait_for(process.communicate(), 10.0)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode is not None
    return process.returncode, stderr.decode(errors="replace")


async def clip_command(bot: BotProcess, slack: SlackSimulator) -> None:
    """Type `/clip CLIP` in #general: a signed request to the process's /slack/events."""
    request = slash_command(CLIP, response_url=slack.response_url())
    response = await post(f"{bot.url}/slack/events", request, signing_secret=SIGNING_SECRET)
    assert 200 == response.status_code, bot.output()


def updates_of(slack: SlackSimulator, message: Message) -> list[Call]:
    """The successful chat.update calls on a message."""
    return [
        c
        for c in slack.calls_to("chat.update")
        if c.ok and (c.args.get("channel"), c.args.get("ts")) == (message.channel, message.ts)
    ]


def top_level_posts(slack: SlackSimulator) -> list[Call]:
    """The chat.postMessage calls that posted a status message of CLIP (not in a thread)."""
    return [
        c
        for c in slack.calls_to("chat.postMessage")
        if c.ok and not c.args.get("thread_ts") and CLIP in json.dumps(c.args)
    ]


async def test_a_restart_spreads_the_first_polls_over_one_interval(make_settings, slack):
    """1,000 stored trackings: their first polls are evenly spaced from the start, none at once."""
    settings = make_settings(poll_interval_seconds=30)
    store = Store(settings.async_database_url)
    await store.open()
    now = time.time()
    for n in range(1000):
        # Their messages exist, so a first poll that edits one does not end its tracking.
        ts = f"{now - 3600 + n}.000100"
        slack.messages["C0GENERAL", ts] = Message(
            "C0GENERAL", ts, slack.bot_user_id, "Clip", bot_id=slack.bot_id
        )
        await store.add(
            Tracking(
                id=Tracking.new_id(),
                team_id="T0SIM",
                channel_id="C0GENERAL",
                message_ts=ts,
                clip_id=f"Stored{n:05d}{'z' * 11}",
                requester_id="U0ALICE",
                state=TrackingState.FOLLOWING,
                final_reply_sent=False,
                started_at=now,
                changed_at=now,
                progress_at=now,
            )
        )
    await store.close()

    started = datetime.now(UTC)
    bot = await Bot.start(settings)
    try:
        jobs = bot.scheduler.get_jobs()
        firsts = sorted(job.next_run_time for job in jobs)
    finally:
        await bot.stop()

    assert 1000 == len(jobs)
    # A job whose first poll already ran (start-up is slow on a loaded machine) has moved on to
    # its next poll; the others still show where their first poll was put.
    firsts = [when for when in firsts if when <= started + timedelta(seconds=30)]
    gaps = [(later - earlier).total_seconds() for earlier, later in itertools.pairwise(firsts)]
    assert len(firsts) >= 900
    assert firsts[0] >= started
    assert min(gaps) == pytest.approx(0.03, abs=0.001)  # 30 s / 1,000, one after the other


FOLLOWED = "Followed0123456789abcd"


async def follow_one(bot: Bot, slack: SlackSimulator, rhombus: RhombusSimulator) -> Message:
    """Follow one clip that stays at 20 %; its status message, once stored as followed."""
    rhombus.add_clip(FOLLOWED, script=stays("UPLOADING", "Uploading video", 20))
    await post(
        f"http://127.0.0.1:{bot.port}/slack/events",
        slash_command(FOLLOWED, response_url=slack.response_url()),
        signing_secret=SIGNING_SECRET,
    )
    await slack.wait_for(lambda s: len(s.calls_to("chat.postMessage")) == 1)
    (message,) = (m for m in slack.messages.values() if m.thread_ts is None)
    await stored(bot, message, TrackingState.FOLLOWING)
    return message


async def stored_percent(bot: Bot) -> int | None:
    """The percentage the database holds for the one tracking there is."""
    store = Store(bot.settings.async_database_url)
    try:
        (tracking,) = await store.unfinished()
    finally:
        await store.close()
    return tracking.percent


async def test_what_a_message_shows_is_stored_by_the_time_the_bot_has_stopped(bot, slack, rhombus):
    """A poll's news is written in batches; stopping writes the last batch before closing."""
    message = await follow_one(bot, slack, rhombus)
    rhombus.set_clip(FOLLOWED, percentComplete=64)
    await slack.wait_for(lambda s: len(s.calls_to("chat.update")) == 1)
    await bot.stop()  # at once: well within the batch's delay

    store = Store(bot.settings.async_database_url)
    try:
        (tracking,) = await store.unfinished()
    finally:
        await store.close()
    assert (64, 64) == (tracking.percent, (tracking.clip or {})["percentComplete"])
    # The edit's success is recorded: the next start does not send it again.
    assert RenderedMessage(message.text, message.blocks).fingerprint == tracking.fingerprint


@pytest.mark.slow
async def test_a_write_the_database_refuses_is_kept_and_retried(
    bot, slack, rhombus, caplog, tmp_path
):
    """A batch the database refuses (locked elsewhere) is logged, kept, and written later."""
    message = await follow_one(bot, slack, rhombus)
    holder = sqlite3.connect(tmp_path / "bot.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    try:
        rhombus.set_clip(FOLLOWED, percentComplete=64)
        await slack.wait_for(lambda _: "64%" in message.text)
        await wait_until(lambda: "cannot write" in caplog.text, seconds=15)
    finally:
        holder.rollback()
        holder.close()
    async with asyncio.timeout(15):  # the retry comes a few seconds later
        while await stored_percent(bot) != 64:  # noqa: ASYNC110
            await asyncio.sleep(0.1)

    (failure,) = [r for r in caplog.records if "cannot write" in r.getMessage()]
    assert "database is locked; retrying" in failure.getMessage()
    assert failure.exc_info is None


# --- The finished clip's video, killed at each step -----------------------------------------------

MEDIA_PATH = f"/media/metadata/us-west-2/{CLIP}.mp4"


@pytest.fixture
def video_bots(bots: BotProcesses, tmp_path: Path) -> BotProcesses:
    """Bot processes that deliver videos, with their temporary files in tmp_path/tmp."""
    (tmp_path / "tmp").mkdir()
    bots.env = {
        **bots.env,
        "DELIVER_VIDEO": "true",
        "DELIVER_THUMBNAIL": "true",
        "TMPDIR": str(tmp_path / "tmp"),
    }
    return bots


async def follow_to_the_end(
    bots: BotProcesses,
    first: BotProcess,
    slack: SlackSimulator,
    rhombus: RhombusSimulator,
    clock: ManualClock,
) -> Message:
    """Follow a 1 MB clip in #general with the first process, then let it complete."""
    rhombus.add_clip(CLIP, title="Lobby door", script=completes(10), durationSec=4)
    await clip_command(first, slack)
    await bots.wait_for(slack, lambda s: len(status_messages(s)) == 1)
    (message,) = status_messages(slack)
    clock.advance(35)
    return message


def is_video_upload_url(call: Call) -> bool:
    """Whether the call asks for an upload URL for the mp4 (not the thumbnail)."""
    return call.method == "files.getUploadURLExternal" and str(call.args.get("filename")).endswith(
        ".mp4"
    )


def is_video_share(call: Call) -> bool:
    """Whether the call completes an upload into a channel (the thumbnail is shared nowhere)."""
    return call.method == "files.completeUploadExternal" and bool(call.args.get("channel_id"))


async def delivered(database_url: str, message: Message, bots: BotProcesses) -> str:
    """Wait until the message's delivery is done; its final state."""
    store = Store(database_url.replace("sqlite://", "sqlite+aiosqlite://", 1))
    rows = DeliveryRows(store)
    deadline = time.monotonic() + WAIT_TIMEOUT
    try:
        while True:
            tracking = await store.find_by_message(message.channel, message.ts)
            delivery = None if tracking is None else await rows.get(tracking.id)
            if delivery is not None and DeliveryState(delivery.state).is_done:
                return delivery.state
            if time.monotonic() > deadline:
                raise AssertionError(f"not delivered: {delivery!r}\n{bots.output()}")
            await asyncio.sleep(0.05)
    finally:
        await store.close()


@pytest.mark.slow
async def test_kill_9_during_the_download_delivers_the_video_once(
    video_bots, slack, rhombus, clock, database_url
):
    """Killed as the mp4 download starts: the next process delivers it once, leaves no file."""
    bots = video_bots
    first = await bots.start()

    def kill_on_download(exchange: Exchange) -> None:
        if exchange.path == MEDIA_PATH and first.process.returncode is None:
            os.kill(first.process.pid, signal.SIGKILL)

    rhombus.on_request = kill_on_download
    message = await follow_to_the_end(bots, first, slack, rhombus, clock)
    assert -signal.SIGKILL == await bots.exit_status(first)
    rhombus.on_request = None
    await bots.start()

    assert DeliveryState.DELIVERED == await delivered(database_url, message, bots)
    assert 1 == len(slack.shared_files(CHANNEL, message.ts)), bots.output()
    assert 1 == len(slack.thread_replies(CHANNEL, message.ts))
    assert [] == await asyncio.to_thread(os.listdir, bots.env["TMPDIR"])


@pytest.mark.slow
async def test_kill_9_before_completing_the_upload_uploads_again_once(
    video_bots, slack, rhombus, clock, database_url
):
    """Killed once Slack gave the upload URL: the unshared file is dropped, one video appears."""
    bots = video_bots
    first = await bots.start()
    kill_when(slack, first, is_video_upload_url)
    message = await follow_to_the_end(bots, first, slack, rhombus, clock)
    assert -signal.SIGKILL == await bots.exit_status(first)
    await bots.start()

    assert DeliveryState.DELIVERED == await delivered(database_url, message, bots)
    assert 2 == len([c for c in slack.calls if is_video_upload_url(c)])
    assert 1 == len(slack.shared_files(CHANNEL, message.ts)), bots.output()
    assert 1 == len(slack.thread_replies(CHANNEL, message.ts))


@pytest.mark.slow
async def test_kill_9_after_slack_shared_the_video_does_not_share_it_again(
    video_bots, slack, rhombus, clock, database_url
):
    """Killed once Slack shared the video, before the bot heard: the restart confirms, no repeat."""
    bots = video_bots
    first = await bots.start()
    kill_when(slack, first, is_video_share)
    message = await follow_to_the_end(bots, first, slack, rhombus, clock)
    assert -signal.SIGKILL == await bots.exit_status(first)
    await bots.start()

    assert DeliveryState.DELIVERED == await delivered(database_url, message, bots)
    assert 1 == len([c for c in slack.calls if is_video_upload_url(c)])
    assert 1 == len([c for c in slack.calls if is_video_share(c)])
    assert 1 == len(slack.shared_files(CHANNEL, message.ts)), bots.output()
    assert 1 == len(slack.thread_replies(CHANNEL, message.ts))


@pytest.mark.slow
async def test_kill_9_after_the_text_reply_does_not_repeat_it(
    video_bots, slack, rhombus, clock, database_url
):
    """Killed once Slack took the text reply saying why there is no video: it is not repeated."""
    bots = video_bots
    bots.env["VIDEO_MAX_MB"] = "0.5"
    first = await bots.start()
    kill_when(
        slack, first, lambda c: c.method == "chat.postMessage" and bool(c.args.get("thread_ts"))
    )
    message = await follow_to_the_end(bots, first, slack, rhombus, clock)
    assert -signal.SIGKILL == await bots.exit_status(first)
    await bots.start()

    assert DeliveryState.REPLIED == await delivered(database_url, message, bots)
    (reply,) = slack.thread_replies(CHANNEL, message.ts)
    assert "No video: the clip is 1 MB" in reply.text


@pytest.mark.slow
async def test_kill_9_when_completing_never_reached_slack_completes_it_once(
    video_bots, slack, rhombus, clock, database_url
):
    """Killed as Slack fails the completion: the restart finds the file unshared and shares it."""
    bots = video_bots
    first = await bots.start()

    def kill_on_failed_share(call: Call) -> None:
        if is_video_upload_url(call):  # the thumbnail's completion names no channel
            slack.fail(
                "files.completeUploadExternal",
                error="service_unavailable",
                status=503,
                channel=CHANNEL,
            )
        if is_video_share(call) and first.process.returncode is None:
            os.kill(first.process.pid, signal.SIGKILL)

    slack.on_call = kill_on_failed_share
    message = await follow_to_the_end(bots, first, slack, rhombus, clock)
    assert -signal.SIGKILL == await bots.exit_status(first)
    slack.on_call = None
    await bots.start()

    assert DeliveryState.DELIVERED == await delivered(database_url, message, bots)
    assert 1 == len([c for c in slack.calls if is_video_upload_url(c)])
    assert [False, True] == [c.ok for c in slack.calls if is_video_share(c)]
    assert 1 == len(slack.shared_files(CHANNEL, message.ts)), bots.output()
    assert 1 == len(slack.thread_replies(CHANNEL, message.ts))
