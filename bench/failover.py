"""Failover under load: three replicas follow 1,000 clips; the workspace's holder is killed often.

    python -m bench.failover [--clips 1000] [--minutes 10] [--every 2] [--replicas 3]

One throwaway PostgreSQL database holds `--clips` followed trackings of one workspace (the
`bench` scenario's clips, each a few minutes from its end); `--replicas` real bot processes,
each with a Slack token of its own, share it. The Slack stand-in enforces Slack's limit of
`--slack-limit` `chat.update` a minute in the workspace. After `--warmup` seconds, every
`--every` minutes the replica holding the workspace's shard is killed with SIGKILL and a new
replica is started in its place (as an orchestrator would), for `--minutes`.

Reported, for each kill: when another replica held the shard, when every unfinished tracking was
followed again, when the new holder's first edit reached Slack, and the longest time the
workspace saw no edit at all around it; the most `chat.update` calls (and 429s) in any rolling
minute around it against Slack's limit, and the most Rhombus calls in any second against the
bot's budget. Over the run: polls lost (tracking-seconds followed by nobody, over the poll
interval) and doubled (followed by two replicas at once), from sampling every replica's
`/metrics` and the database four times a second; messages whose edits from two replicas
interleave; thread replies posted twice.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bench.figures import busiest_window, machine, percentile, say, secs, table
from bench.replicas import Deployment, deployment
from bench.stage import TEAM_ID
from bot.config import Settings
from bot.shards import SHARDS, shard_of

if TYPE_CHECKING:
    from collections.abc import Sequence

    from bench.replicas import Replica, Sample
    from standins.slack import Call

SHARD = shard_of(TEAM_ID)
SAMPLE_SECONDS = 0.25
AROUND_SECONDS = 60.0  # what counts as "around" a kill, after it
SPREAD_TIMEOUT_SECONDS = 30.0


@dataclass(frozen=True)
class Kill:
    """One replica killed, and when."""

    at: float
    replica: Replica


async def spread(run: Deployment) -> None:
    """Wait until the running replicas hold every shard between them, about evenly."""
    deadline = time.monotonic() + SPREAD_TIMEOUT_SECONDS
    while True:
        if run.samples:
            held = [len(seen.shards) for seen in run.samples[-1].replicas.values()]
            if (
                sum(held) == SHARDS
                and len(held) == len(run.running)
                and min(held) >= SHARDS // len(held) - 1
            ):
                return
        if time.monotonic() > deadline:
            raise TimeoutError("the shards did not spread among the replicas")
        await asyncio.sleep(SAMPLE_SECONDS)


def holder_of_shard(run: Deployment) -> Replica:
    """The replica the last sample says holds the workspace's shard."""
    for sample in reversed(run.samples):
        for number, seen in sample.replicas.items():
            replica = run.replicas[number - 1]
            if SHARD in seen.shards and replica.ended_at is None:
                return replica
    raise LookupError("nobody holds the workspace's shard")


def edits(calls: Sequence[Call]) -> list[Call]:
    """The chat.update calls Slack answered, ok or not, in time order."""
    return sorted((c for c in calls if c.method == "chat.update"), key=lambda c: c.time)


def first_after(samples: Sequence[Sample], since: float, ok: object) -> float | None:
    """Seconds from `since` to the first sample after it for which `ok(sample)` holds."""
    for sample in samples:
        if sample.at > since and ok(sample):  # type: ignore[operator]
            return sample.at - since
    return None


def longest_quiet(times: Sequence[float], start: float, end: float) -> float:
    """The longest stretch within [start, end] with none of `times` in it."""
    inside = [start, *(t for t in times if start < t < end), end]
    return max(b - a for a, b in itertools.pairwise(inside))


def most_in_a_minute(times: Sequence[float], start: float, end: float) -> int:
    """The most of `times` in any 60 s window that overlaps [start, end]."""
    ordered = sorted(times)
    most = 0
    first = 0
    for last, at in enumerate(ordered):
        while ordered[first] <= at - 60.0:
            first += 1
        if start <= at <= end + 60.0:
            most = max(most, last - first + 1)
    return most


def kill_row(run: Deployment, kill: Kill, budget: float, end: float) -> list[object]:
    """What one kill did (in the minute after it, or until `end`)."""
    since = kill.at
    after = min(since + AROUND_SECONDS, end)

    def held(sample: Sample) -> bool:
        return any(SHARD in seen.shards for seen in sample.replicas.values())

    def followed(sample: Sample) -> bool:
        return sum(seen.live for seen in sample.replicas.values()) >= sample.unfinished

    updates = edits(run.slack.calls)
    answered = [c.time for c in updates if c.ok]
    new_holder = next((c.time for c in updates if c.ok and c.time > since), None)
    limited = sum(1 for c in updates if since <= c.time <= after and c.status == 429)
    rhombus = [at for at, _ in run.requests.bot if since <= at <= after]
    held_after = first_after(run.samples, since, held)
    followed_after = first_after(run.samples, since, followed)
    return [
        f"replica {kill.replica.number}",
        secs(held_after, 2) if held_after is not None else "never",
        secs(followed_after, 2) if followed_after is not None else "never",
        secs(new_holder - since, 2) if new_holder is not None else "never",
        secs(longest_quiet(answered, since - 10.0, after), 1),
        f"{most_in_a_minute(answered, since, after)} / {budget:g}",
        limited,
        busiest_window(rhombus, 1.0),
    ]


def polls_lost_and_doubled(samples: Sequence[Sample], interval: float) -> tuple[float, float]:
    """Polls nobody made (trackings followed by none) and made twice, from the samples."""
    lost = doubled = 0.0
    for before, after in itertools.pairwise(samples):
        live = sum(seen.live for seen in before.replicas.values())
        dt = after.at - before.at
        lost += max(0.0, before.unfinished - live) * dt / interval
        doubled += max(0.0, live - before.unfinished) * dt / interval
    return lost, doubled


def interleaved(calls: Sequence[Call]) -> int:
    """Messages whose edits and replies from two replicas interleave (A, B, A)."""
    by_message: dict[str, list[Call]] = {}
    for call in calls:
        if not call.ok:
            continue
        if call.method == "chat.update":
            by_message.setdefault(str(call.args.get("ts")), []).append(call)
        elif call.method == "chat.postMessage" and call.args.get("thread_ts"):
            by_message.setdefault(str(call.args.get("thread_ts")), []).append(call)
    count = 0
    for message_calls in by_message.values():
        runs: list[str | None] = []
        for call in sorted(message_calls, key=lambda c: c.time):
            if not runs or runs[-1] != call.token:
                runs.append(call.token)
        count += len(runs) != len(set(runs))
    return count


async def run(args: argparse.Namespace) -> bool:
    """Run the scenario and print the report; whether nothing was lost or doubled."""
    interval = args.poll_interval
    async with deployment(
        clips=args.clips,
        teams=[TEAM_ID],
        step_seconds=args.step_seconds,
        slack_limit=args.slack_limit,
        poll_interval_seconds=interval,
    ) as run:
        done = asyncio.Event()
        for _ in range(args.replicas):
            await run.start()
        watching = asyncio.create_task(run.watch(SAMPLE_SECONDS, done))
        try:
            await spread(run)
            await asyncio.sleep(args.warmup)
            start = time.monotonic()
            kills = await kill_every(run, args, start)
            await asyncio.sleep(max(0.0, start + args.minutes * 60 - time.monotonic()))
            end = time.monotonic()
        finally:
            done.set()
            await watching
        report(run, args, kills, start, end)
    _, doubled = polls_lost_and_doubled([s for s in run.samples if start <= s.at <= end], interval)
    return doubled < 1 and interleaved(run.slack.calls) == 0


async def kill_every(run: Deployment, args: argparse.Namespace, start: float) -> list[Kill]:
    """Kill the workspace's holder every `--every` minutes; start a new replica each time."""
    kills: list[Kill] = []
    starting: list[asyncio.Task[Replica]] = []
    at = start + args.every * 60
    while at < start + args.minutes * 60:
        await asyncio.sleep(max(0.0, at - time.monotonic()))
        holder = holder_of_shard(run)
        kills.append(Kill(await run.kill(holder), holder))
        starting.append(asyncio.create_task(run.start()))  # as an orchestrator would
        at += args.every * 60
    for task in starting:
        with contextlib.suppress(Exception):
            await task
    return kills


def report(
    run: Deployment, args: argparse.Namespace, kills: Sequence[Kill], start: float, end: float
) -> None:
    """Print the run's tables."""
    budget = Settings.model_fields["slack_edits_per_minute"].default
    samples = [s for s in run.samples if start <= s.at <= end]
    lost, doubled = polls_lost_and_doubled(samples, args.poll_interval)
    calls = [c for c in run.slack.calls if start <= c.time <= end]
    updates = edits(calls)
    answered = [c.time for c in updates if c.ok]
    quiet_without_kills = max(
        (
            longest_quiet(answered, a, b)
            for a, b in _between_kills(start, end, [k.at for k in kills])
            if b > a
        ),
        default=0.0,
    )
    replies: dict[str, int] = {}
    for call in calls:
        if call.ok and call.method == "chat.postMessage" and call.args.get("thread_ts"):
            key = str(call.args["thread_ts"])
            replies[key] = replies.get(key, 0) + 1
    per_message: dict[str, list[float]] = {}
    for call in updates:
        if call.ok:
            per_message.setdefault(str(call.args.get("ts")), []).append(call.time)
    still = [longest_quiet(times, start, end) for times in per_message.values()]
    rhombus_all = [at for at, _ in run.requests.bot if start <= at <= end]
    say(f"## Failover: {args.clips} clips, {args.replicas} replicas ({machine()})")
    say()
    say(
        f"One workspace; the holder of its shard killed (SIGKILL) every {args.every:g} min for "
        f"{args.minutes:g} min, a new replica started at once each time. Bot defaults but "
        f"POLL_INTERVAL_SECONDS {args.poll_interval:g}; Slack stand-in limit "
        f"{args.slack_limit} chat.update/min; clip stages {args.step_seconds:g} s."
    )
    say()
    headers = [
        "killed",
        "shard held after s",
        "all followed after s",
        "first edit after s",
        "longest with no edit s",
        "most chat.update taken in a minute / bot budget",
        "429s in the minute after",
        "most Rhombus calls in 1 s",
    ]
    say(table(headers, [kill_row(run, kill, budget, end) for kill in kills]))
    say()
    say(
        table(
            ["over the run", "value"],
            [
                [
                    "chat.update answered ok / 429",
                    f"{len(answered)} / {sum(1 for c in updates if c.status == 429)}",
                ],
                ["longest with no edit at all, away from kills s", secs(quiet_without_kills, 1)],
                ["polls lost (tracking-seconds unfollowed / interval)", f"{lost:.1f}"],
                ["polls doubled (followed by two replicas)", f"{doubled:.1f}"],
                ["messages with interleaved edits of two replicas", interleaved(calls)],
                ["thread replies posted twice", sum(1 for n in replies.values() if n > 1)],
                ["thread replies (clips ended)", sum(replies.values())],
                [
                    "per message, longest with no edit: p50 / max s",
                    f"{secs(percentile(still, 0.5), 0)} / {secs(max(still, default=0.0), 0)}",
                ],
                [
                    "most Rhombus calls in 1 s (bot budget 5/s, burst 10)",
                    busiest_window(rhombus_all, 1.0),
                ],
                [
                    "Rhombus calls per minute",
                    f"{len(rhombus_all) / max(1e-9, (end - start) / 60):.0f}",
                ],
            ],
        )
    )


def _between_kills(start: float, end: float, kills: Sequence[float]) -> list[tuple[float, float]]:
    """The stretches of [start, end] at least AROUND_SECONDS away from every kill."""
    stretches = []
    edge = start
    for at in kills:
        stretches.append((edge, at))
        edge = at + AROUND_SECONDS
    stretches.append((edge, end))
    return stretches


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; 0 when no poll was doubled and no edits interleaved."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.failover",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--clips", type=int, default=1000, help="followed clips (1000)")
    parser.add_argument("--replicas", type=int, default=3, help="bot processes (3)")
    parser.add_argument("--minutes", type=float, default=10.0, help="length of the run (10)")
    parser.add_argument("--every", type=float, default=2.0, help="minutes between kills (2)")
    parser.add_argument("--warmup", type=float, default=20.0, help="seconds before the run (20)")
    parser.add_argument(
        "--poll-interval", type=float, default=5.0, help="the bot's POLL_INTERVAL_SECONDS (5)"
    )
    parser.add_argument(
        "--slack-limit", type=int, default=50, help="chat.update a minute Slack allows (50)"
    )
    parser.add_argument(
        "--step-seconds", type=float, default=300.0, help="length of each clip stage, s (300)"
    )
    args = parser.parse_args(argv)
    return 0 if asyncio.run(run(args)) else 1


if __name__ == "__main__":
    raise SystemExit(main())
