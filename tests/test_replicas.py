"""Three bot processes on one PostgreSQL database: the workspace's holder hands over cleanly.

One replica follows the workspace, the others stand by; killed, stopped or cut off from its
lock, the holder hands over, and Slack shows every clip's end once. Each replica has a bot token
of its own, so the Slack stand-in tells who made each call: the calls about one message never
interleave between replicas.
"""

from __future__ import annotations

import asyncio
import signal
import time
from typing import TYPE_CHECKING, Any

import asyncpg
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bot.shards import LOCK_SPACE, SHARDS, shard_of
from bot.status_message import ACTION_REFRESH, ACTION_STOP
from standins.rhombus import completes, stays
from standins.slack_requests import block_action, post, slash_command
from tests.helpers import BOT_TOKEN, RHOMBUS_KEY, SIGNING_SECRET, base_env, shown_text
from tests.processes import BotProcess, BotProcesses

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Sequence
    from pathlib import Path

    from standins.rhombus import ManualClock, RhombusSimulator
    from standins.slack import Call, Message, SlackSimulator
    from standins.slack_requests import SlackRequest

CHANNEL = "C0GENERAL"
SHARD = shard_of("T0SIM")  # the stand-in's one workspace
CLIPS = ("LobbyClip0123456789abc", "DockClip_0123456789xyz", "GateClip_0123456789qrs")
FAILOVER_SECONDS = 5.0


@pytest.fixture
def replica_env(
    postgres_url: str, slack: SlackSimulator, rhombus: RhombusSimulator
) -> dict[str, str]:
    """Every replica's environment: HTTP mode, the stand-ins, one PostgreSQL database."""
    return {
        **base_env(),
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": slack.api_url,
        "RHOMBUS_API_KEY": RHOMBUS_KEY,
        "RHOMBUS_API_URL": rhombus.url,
        "RHOMBUS_MEDIA_URL": rhombus.url,
        "DELIVER_VIDEO": "false",  # handover is about following; the video has its own tests
        "DELIVER_THUMBNAIL": "false",
        "RHOMBUS_TIMEOUT_SECONDS": "2",
        "DATABASE_URL": postgres_url,
        "POLL_INTERVAL_SECONDS": "0.2",
        "HOST": "127.0.0.1",
    }


@pytest.fixture
async def replicas(replica_env: dict[str, str], tmp_path: Path) -> AsyncIterator[BotProcesses]:
    """Starts replicas; kills any still running when the test ends."""
    processes = BotProcesses(replica_env, tmp_path)
    try:
        yield processes
    finally:
        await processes.close()


def token_of(bot: BotProcess) -> str:
    """The bot token a replica was started with."""
    return f"xoxb-replica-{bot.number}"


async def start_replica(replicas: BotProcesses, slack: SlackSimulator) -> BotProcess:
    """Start one more replica, with a bot token of its own."""
    token = f"xoxb-replica-{len(replicas.started) + 1}"
    slack.add_bot_token(token)
    replicas.env["SLACK_BOT_TOKEN"] = token
    return await replicas.start()


async def three_replicas(
    replicas: BotProcesses, slack: SlackSimulator
) -> tuple[BotProcess, list[BotProcess]]:
    """Start three replicas, wait until the shards are spread; the workspace's holder, the rest."""
    started = [await start_replica(replicas, slack) for _ in range(3)]
    deadline = time.monotonic() + 10.0
    while True:
        held = {bot.number: await shards_of(bot) for bot in started}
        counts = sorted(len(shards) for shards in held.values())
        if sum(counts) == SHARDS and counts[0] >= SHARDS // 3 - 1:
            break
        if time.monotonic() > deadline:
            raise AssertionError(f"shards not spread: {held}\n{replicas.output()}")
        await asyncio.sleep(0.05)
    (holder,) = [bot for bot in started if SHARD in held[bot.number]]
    return holder, [bot for bot in started if bot is not holder]


async def shards_of(bot: BotProcess) -> set[int]:
    """The shards a replica says it holds on /healthz."""
    async with httpx.AsyncClient(trust_env=False, timeout=2.0) as client:
        answer: dict[str, Any] = (await client.get(f"{bot.url}/healthz")).json()
    return set(answer["shards"])


async def seconds_until_held(bots: Sequence[BotProcess], since: float) -> float:
    """Wait until one of the replicas holds the workspace's shard; seconds from `since`."""
    while not any([SHARD in await shards_of(bot) for bot in bots]):  # each awaited
        if time.monotonic() - since > FAILOVER_SECONDS * 2:
            raise AssertionError("nobody took the workspace's shard")
        await asyncio.sleep(0.02)
    return time.monotonic() - since


async def shards_held_in_metrics(bots: Sequence[BotProcess]) -> float:
    """Once the replicas hold every shard between them (5 s at most): the sum /metrics shows."""
    deadline = time.monotonic() + FAILOVER_SECONDS
    while True:
        held = 0.0
        async with httpx.AsyncClient(trust_env=False, timeout=2.0) as client:
            for bot in bots:
                scraped = (await client.get(f"{bot.url}/metrics")).text
                held += next(
                    sample.value
                    for family in text_string_to_metric_families(scraped)
                    for sample in family.samples
                    if sample.name == "clipbot_shards_held"
                )
        if held == SHARDS or time.monotonic() > deadline:
            return held
        await asyncio.sleep(0.05)


async def send(bot: BotProcess, request: SlackRequest) -> None:
    """Post a signed Slack request to that replica."""
    response = await post(f"{bot.url}/slack/events", request, signing_secret=SIGNING_SECRET)
    assert 200 == response.status_code


async def follow_clips(bot: BotProcess, slack: SlackSimulator, replicas: BotProcesses) -> None:
    """Type `/clip` with every clip, on that replica, and wait for the status messages."""
    await send(bot, slash_command(" ".join(CLIPS), response_url=slack.response_url()))
    await replicas.wait_for(slack, lambda s: len(status_messages(s)) == len(CLIPS))


def status_messages(slack: SlackSimulator) -> list[Message]:
    """The bot's top-level messages in the channel."""
    return [
        m
        for m in slack.messages.values()
        if m.channel == CHANNEL and m.bot_id is not None and m.thread_ts is None
    ]


def edited(slack: SlackSimulator, message: Message) -> int:
    """How many edits of the message Slack took."""
    return sum(1 for c in slack.calls_to("chat.update") if c.ok and c.args.get("ts") == message.ts)


def all_replied(slack: SlackSimulator) -> bool:
    """Whether every status message has its thread reply."""
    return all(slack.thread_replies(CHANNEL, m.ts) for m in status_messages(slack))


def calls_about(slack: SlackSimulator, message: Message) -> list[Call]:
    """Every call Slack took that posted, edited or replied to the message, in time order."""
    return sorted(
        (
            call
            for call in slack.calls
            if call.ok
            and call.args.get("channel") == message.channel
            and (
                (call.method == "chat.update" and call.args.get("ts") == message.ts)
                or (
                    call.method == "chat.postMessage"
                    and message.ts in {call.args.get("thread_ts"), (call.response or {}).get("ts")}
                )
            )
        ),
        key=lambda call: call.time,
    )


def assert_no_two_replicas_interleave(slack: SlackSimulator, output: str) -> None:
    """For every status message, each holder's edits and replies come in one run.

    (The replica that posted the message may be another: any replica takes a `/clip`.)
    """
    for message in status_messages(slack):
        runs: list[str | None] = []
        for call in calls_about(slack, message)[1:]:
            if not runs or runs[-1] != call.token:
                runs.append(call.token)
        assert len(runs) == len(set(runs)), f"{message.ts}: {runs}\n{output}"


def assert_each_end_shown_once(slack: SlackSimulator, end: str, output: str) -> None:
    """One status message per clip, each showing `end` in one revision, and one thread reply."""
    messages = status_messages(slack)
    assert len(CLIPS) == len(messages), output
    assert len(CLIPS) == len(slack.calls_to("chat.postMessage")) - len(CLIPS), output
    for message in messages:
        assert end in shown_text(message), output
        assert 1 == sum(end in r.text for r in message.revisions), output
        assert 1 == len(slack.thread_replies(CHANNEL, message.ts)), output
    assert_no_two_replicas_interleave(slack, output)


@pytest.mark.slow
async def test_kill_9_of_the_holder_hands_its_clips_over_within_5_s(
    replicas: BotProcesses, slack: SlackSimulator, rhombus: RhombusSimulator, clock: ManualClock
) -> None:
    """The holder killed mid-clip: another replica polls on, every end and reply shown once."""
    holder, standbys = await three_replicas(replicas, slack)
    for clip in CLIPS:
        rhombus.add_clip(clip, script=completes(10))
    await follow_clips(standbys[0], slack, replicas)
    clock.advance(15)
    await replicas.wait_for(slack, lambda s: all(edited(s, m) for m in status_messages(s)))

    holder.process.kill()
    killed = time.monotonic()
    assert -signal.SIGKILL == await replicas.exit_status(holder)
    clock.advance(20)  # every clip completes
    await replicas.wait_for(slack, all_replied)
    replied = time.monotonic() - killed

    assert replied < FAILOVER_SECONDS, replicas.output()
    assert_each_end_shown_once(slack, "Ready", replicas.output())


@pytest.mark.slow
async def test_sigterm_hands_the_holders_clips_over_in_about_a_second(
    replicas: BotProcesses, slack: SlackSimulator, rhombus: RhombusSimulator, clock: ManualClock
) -> None:
    """SIGTERM to the holder: it gives its shards back as it stops, and another takes them."""
    holder, standbys = await three_replicas(replicas, slack)
    for clip in CLIPS:
        rhombus.add_clip(clip, script=completes(10))
    await follow_clips(holder, slack, replicas)
    clock.advance(15)
    await replicas.wait_for(slack, lambda s: all(edited(s, m) for m in status_messages(s)))

    holder.process.send_signal(signal.SIGTERM)
    stopped = time.monotonic()
    assert 0 == await replicas.exit_status(holder)
    took = await seconds_until_held(standbys, stopped)
    clock.advance(20)
    await replicas.wait_for(slack, all_replied)

    assert took < 2.0, replicas.output()
    assert SHARDS == await shards_held_in_metrics(standbys)
    assert_each_end_shown_once(slack, "Ready", replicas.output())


@pytest.mark.slow
async def test_a_holder_whose_lock_connection_is_terminated_stops_at_once(
    replicas: BotProcesses,
    slack: SlackSimulator,
    rhombus: RhombusSimulator,
    clock: ManualClock,
    postgres_url: str,
) -> None:
    """pg_terminate_backend on the holder's lock session: it lets go, another takes over."""
    holder, standbys = await three_replicas(replicas, slack)
    for clip in CLIPS:
        rhombus.add_clip(clip, script=completes(10))
    await follow_clips(standbys[1], slack, replicas)
    clock.advance(15)
    await replicas.wait_for(slack, lambda s: all(edited(s, m) for m in status_messages(s)))

    connection = await asyncpg.connect(postgres_url)
    try:
        terminated = await connection.fetch(
            "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' "
            "AND classid = $1::int::oid AND objid = $2 AND objsubid = 2 "
            "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            LOCK_SPACE,
            SHARD,
        )
    finally:
        await connection.close()
    cut = time.monotonic()
    assert [(True,)] == [tuple(row) for row in terminated]
    let_go = await seconds_until_lost(holder, cut, replicas)
    clock.advance(20)
    await replicas.wait_for(slack, all_replied)

    assert let_go < 1.0, replicas.output()
    assert "stopped following" in holder.output(), replicas.output()
    assert_each_end_shown_once(slack, "Ready", replicas.output())


async def seconds_until_lost(bot: BotProcess, since: float, replicas: BotProcesses) -> float:
    """Wait until the replica no longer says it holds the workspace's shard."""
    while SHARD in await shards_of(bot):
        if time.monotonic() - since > FAILOVER_SECONDS:
            raise AssertionError(f"{bot.number} still holds the shard\n{replicas.output()}")
        await asyncio.sleep(0.01)
    return time.monotonic() - since


@pytest.mark.slow
async def test_refresh_and_stop_clicked_on_a_standby_are_carried_out_by_the_holder(
    replicas: BotProcesses,
    slack: SlackSimulator,
    rhombus: RhombusSimulator,
    replica_env: dict[str, str],
) -> None:
    """/clip, Refresh and Stop sent to standbys: the holder polls, edits and stops, once each."""
    replica_env["POLL_INTERVAL_SECONDS"] = "600"  # only a Refresh polls within the test
    holder, standbys = await three_replicas(replicas, slack)
    clip = CLIPS[0]
    rhombus.add_clip(clip, script=stays("UPLOADING", "Uploading video", 10))
    await send(standbys[0], slash_command(clip, response_url=slack.response_url()))
    await replicas.wait_for(slack, lambda s: len(status_messages(s)) == 1)
    (message,) = status_messages(slack)
    rhombus.set_clip(clip, percentComplete=60)

    await send(
        standbys[1],
        block_action(ACTION_REFRESH, clip, message=message, response_url=slack.response_url()),
    )
    await replicas.wait_for(slack, lambda _: "60%" in message.text)
    await send(
        standbys[0],
        block_action(ACTION_STOP, clip, message=message, response_url=slack.response_url()),
    )
    await replicas.wait_for(slack, lambda _: "Stopped following" in message.text)

    assert "stopped by <@U0ALICE>" in shown_text(message), replicas.output()
    assert 1 == sum("Stopped following" in r.text for r in message.revisions)
    assert [message] == status_messages(slack)
    assert [] == slack.ephemerals  # nobody was told the clip is no longer followed
    assert holder.process.returncode is None
    assert {token_of(holder)} == {c.token for c in slack.calls_to("chat.update") if c.ok}
    assert_no_two_replicas_interleave(slack, replicas.output())


async def slack_calls_started(bot: BotProcess, method: str) -> float:
    """How many calls of `method` the replica has begun, as its /metrics says."""
    async with httpx.AsyncClient(trust_env=False, timeout=2.0) as client:
        scraped = (await client.get(f"{bot.url}/metrics")).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(scraped)
        for sample in family.samples
        if sample.name == "clipbot_slack_calls_total" and sample.labels.get("method") == method
    )


async def edits_in_flight(
    holder: BotProcess, slack: SlackSimulator, clock: ManualClock, replicas: BotProcesses
) -> None:
    """Make Slack hold the holder's next edits for 1.5 s, and return once one is on its way."""
    before = await slack_calls_started(holder, "chat.update")
    slack.fail("chat.update", delay=1.5, times=len(CLIPS))
    clock.advance(3)  # every clip moves on: the holder edits each message
    deadline = time.monotonic() + FAILOVER_SECONDS
    while await slack_calls_started(holder, "chat.update") == before:
        if time.monotonic() > deadline:
            raise AssertionError(f"no edit began\n{replicas.output()}")
        await asyncio.sleep(0.01)


@pytest.mark.slow
@pytest.mark.parametrize("how", ["sigterm", "terminate"])
async def test_an_edit_in_flight_at_a_handover_lands_before_the_next_holders_first(  # noqa: PLR0913, PLR0917
    how: str,
    replicas: BotProcesses,
    slack: SlackSimulator,
    rhombus: RhombusSimulator,
    clock: ManualClock,
    postgres_url: str,
) -> None:
    """A slow edit under way as the holder stops or loses its lock: no replica edits over it."""
    holder, standbys = await three_replicas(replicas, slack)
    for clip in CLIPS:
        rhombus.add_clip(clip, script=completes(10))
    await follow_clips(standbys[0], slack, replicas)
    clock.advance(12)
    await replicas.wait_for(slack, lambda s: all(edited(s, m) for m in status_messages(s)))

    await edits_in_flight(holder, slack, clock, replicas)
    if how == "sigterm":
        holder.process.send_signal(signal.SIGTERM)
    else:
        await terminate_lock_session(postgres_url)
    clock.advance(20)
    await replicas.wait_for(slack, all_replied)

    assert_each_end_shown_once(slack, "Ready", replicas.output())
    assert any(c.token == token_of(holder) for c in slack.calls_to("chat.update") if c.ok)


async def terminate_lock_session(postgres_url: str) -> None:
    """pg_terminate_backend on the session holding the workspace's shard."""
    connection = await asyncpg.connect(postgres_url)
    try:
        terminated = await connection.fetch(
            "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' "
            "AND classid = $1::int::oid AND objid = $2 AND objsubid = 2 "
            "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            LOCK_SPACE,
            SHARD,
        )
    finally:
        await connection.close()
    assert [(True,)] == [tuple(row) for row in terminated]
