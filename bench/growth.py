"""Growth: the trackings of 20 workspaces over 1, 2 and 3 replicas, and what each replica costs.

    python -m bench.growth [--clips 2000] [--workspaces 20] [--replicas 1 2 3] [--duration 60]

For each number of `--replicas`, a fresh throwaway PostgreSQL database holds `--clips` followed
trackings spread evenly over `--workspaces` workspaces (the `bench` scenario's clips; the Slack
stand-in holds their status messages); that many real bot processes start on it, the shards
spread among them, and each is measured from inside for `--duration` seconds (after
`--warmup`): the shards and workspaces it holds, the trackings it follows, the polls it ran and
their lateness, its CPU and memory. Workspaces fall into shards by a hash of their id, so with
few workspaces an even spread of shards is not an even spread of work: the table shows both.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import string
import time
from typing import TYPE_CHECKING

from bench.figures import machine, ms, say, table
from bench.replicas import deployment
from bot.shards import SHARDS, shard_of

if TYPE_CHECKING:
    from collections.abc import Sequence

    from bench.bot_process import Measurement
    from bench.replicas import Replicas

SAMPLE_SECONDS = 0.5
SPREAD_TIMEOUT_SECONDS = 30.0


def workspaces(count: int) -> list[str]:
    """`count` workspace ids shaped like Slack's (T and 10 letters or digits), always the same."""
    draw = random.Random(1)  # noqa: S311  # made-up ids, not secrets
    alphabet = string.ascii_uppercase + string.digits
    return ["T" + "".join(draw.choices(alphabet, k=10)) for _ in range(count)]


async def spread(run: Replicas, client_count: int) -> dict[int, frozenset[int]]:
    """Wait until the replicas hold every shard about evenly; the shards of each."""
    deadline = time.monotonic() + SPREAD_TIMEOUT_SECONDS
    async with asyncio.timeout(SPREAD_TIMEOUT_SECONDS + 5):
        while True:
            if run.samples:
                seen = run.samples[-1].replicas
                held = [len(s.shards) for s in seen.values()]
                if (
                    len(held) == client_count
                    and sum(held) == SHARDS
                    and min(held) >= SHARDS // client_count - 1
                ):
                    return {number: s.shards for number, s in seen.items()}
            if time.monotonic() > deadline:
                raise TimeoutError("the shards did not spread among the replicas")
            await asyncio.sleep(SAMPLE_SECONDS)


async def measure(count: int, args: argparse.Namespace) -> list[list[object]]:
    """Run `count` replicas over the workspaces' trackings; a table row per replica."""
    teams = workspaces(args.workspaces)
    async with deployment(
        clips=args.clips,
        teams=teams,
        step_seconds=args.step_seconds,
        poll_interval_seconds=args.poll_interval,
    ) as run:
        done = asyncio.Event()
        for _ in range(count):
            await run.start()
        watching = asyncio.create_task(run.watch(SAMPLE_SECONDS, done))
        try:
            shards = await spread(run, count)
            await asyncio.sleep(args.warmup)
            for replica in run.replicas:
                await replica.bot.mark()
            await asyncio.sleep(args.duration)
            measured: dict[int, Measurement] = {
                replica.number: await replica.bot.report() for replica in run.replicas
            }
            live = {n: seen.live for n, seen in run.samples[-1].replicas.items()}
        finally:
            done.set()
            await watching
    rows = []
    per_team = args.clips / args.workspaces
    for number, held in sorted(shards.items()):
        mine = [team for team in teams if shard_of(team) in held]
        m = measured[number]
        rows.append(
            [
                count,
                f"replica {number}",
                len(held),
                len(mine),
                f"{live.get(number, 0):.0f} (expected {len(mine) * per_team:.0f})",
                m.submitted,
                ms(m.late_p99),
                f"{m.cpu_percent:.1f}",
                f"{m.rss_kb / 1024:.0f}",
            ]
        )
    return rows


async def run(args: argparse.Namespace) -> None:
    """Measure each number of replicas in turn and print the table."""
    rows = []
    for count in args.replicas:
        rows.extend(await measure(count, args))
    say(f"## Growth: {args.workspaces} workspaces over 1-3 replicas ({machine()})")
    say()
    say(
        f"{args.clips} followed clips, {args.clips // args.workspaces} per workspace; bot defaults "
        f"but POLL_INTERVAL_SECONDS {args.poll_interval:g}; each replica measured for "
        f"{args.duration:g} s after {args.warmup:g} s. CPU: % of one core."
    )
    say()
    headers = [
        "replicas",
        "replica",
        "shards",
        "workspaces",
        "trackings followed",
        "polls run",
        "poll late p99 ms",
        "CPU %",
        "RSS MB",
    ]
    say(table(headers, rows))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.growth",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--clips", type=int, default=2000, help="followed clips (2000)")
    parser.add_argument("--workspaces", type=int, default=20, help="workspaces (20)")
    parser.add_argument(
        "--replicas", type=int, nargs="+", default=[1, 2, 3], help="replica counts (1 2 3)"
    )
    parser.add_argument("--duration", type=float, default=60.0, help="seconds measured (60)")
    parser.add_argument("--warmup", type=float, default=15.0, help="seconds before (15)")
    parser.add_argument(
        "--poll-interval", type=float, default=5.0, help="the bot's POLL_INTERVAL_SECONDS (5)"
    )
    parser.add_argument(
        "--step-seconds", type=float, default=600.0, help="length of each clip stage, s (600)"
    )
    args = parser.parse_args(argv)
    asyncio.run(run(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
