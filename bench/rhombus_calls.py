"""Rhombus calls per polling round for N live clips of one organisation: the bot against naive.

    python -m bench.rhombus_calls [--clips 200 1000] [--duration 60] [--poll-interval 5]

For each N the Rhombus simulator holds the `bench` scenario with N clips (slow stages, so all
stay live), and the bot's database holds one followed tracking per clip (stored directly, as if
each had been asked for with `/clip`). The real bot runs in its own process with its default
settings. After a warm-up of two rounds, for `--duration` seconds and in the same run, a naive
poller in the benchmark calls `getClipWithProgress` once per clip every round (at most
`--concurrency` calls in flight). Both are counted at the simulator, told apart by user agent;
a round is `--poll-interval` seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import time
from typing import TYPE_CHECKING

import aiohttp

from bench.figures import machine, percentile, say, secs, table
from bench.stage import following
from standins.rhombus import GET_CLIP_PATH, LIST_CLIPS_PATH

if TYPE_CHECKING:
    from collections.abc import Sequence

    from standins.rhombus import RhombusSimulator

PAGE_SIZE = 200
WARMUP_ROUNDS = 2


async def naive_rounds(
    rhombus: RhombusSimulator, clip_ids: Sequence[str], args: argparse.Namespace
) -> list[float]:
    """Poll every clip with its own call, round after round, for `--duration`; round times."""
    headers = {
        "x-auth-apikey": rhombus.api_key,
        "x-auth-scheme": "api-token",
        "user-agent": "bench-naive-poller",
    }
    in_flight = asyncio.Semaphore(args.concurrency)
    durations = []
    connector = aiohttp.TCPConnector(limit=args.concurrency)
    async with aiohttp.ClientSession(rhombus.url, connector=connector, headers=headers) as http:

        async def get(clip_id: str) -> None:
            async with in_flight, http.post(GET_CLIP_PATH, json={"clipUuid": clip_id}) as answer:
                await answer.read()

        end = time.monotonic() + args.duration
        while (started := time.monotonic()) < end:
            await asyncio.gather(*(get(clip_id) for clip_id in clip_ids))
            durations.append(time.monotonic() - started)
            await asyncio.sleep(max(0.0, started + args.poll_interval - time.monotonic()))
    return durations


def per_round(times: Sequence[float], start: float, rounds: int, interval: float) -> list[int]:
    """How many of `times` fall in each round of `interval` seconds from `start`."""
    counts = [0] * rounds
    for at in times:
        index = int((at - start) // interval)
        if 0 <= index < rounds:
            counts[index] += 1
    return counts


async def measure(clips: int, args: argparse.Namespace) -> list[object]:
    """One N: the bot and the naive poller in the same window; the table's row."""
    async with following(
        clips, step_seconds=args.step_seconds, poll_interval_seconds=args.poll_interval
    ) as run:
        await asyncio.sleep(WARMUP_ROUNDS * args.poll_interval)
        await run.bot.mark()
        start = time.monotonic()
        naive = await naive_rounds(run.rhombus, run.rhombus.clip_uuids, args)
        end = time.monotonic()
        polled = await run.bot.report()
    requests = run.requests

    rounds = max(1, math.floor((end - start) / args.poll_interval))
    pages = len(requests.bot_between(start, end, LIST_CLIPS_PATH)) / rounds
    singles = len(requests.bot_between(start, end, GET_CLIP_PATH)) / rounds
    bot_rounds = per_round(requests.bot_between(start, end), start, rounds, args.poll_interval)
    naive_calls = [
        at for at, path in requests.others if start <= at < end and path == GET_CLIP_PATH
    ]
    naive_per_round = len(naive_calls) / len(naive) if naive else math.nan
    bot_per_round = pages + singles
    return [
        clips,
        math.ceil(clips / PAGE_SIZE),
        f"{pages:.1f}",
        f"{singles:.1f}",
        f"{bot_per_round:.1f}",
        max(bot_rounds, default=0),
        f"{naive_per_round:.0f}",
        f"{naive_per_round / bot_per_round:.0f}x" if bot_per_round else "-",
        secs(percentile(naive, 50)),
        f"{polled.submitted / rounds:.0f}",
    ]


async def run(args: argparse.Namespace) -> None:
    """Measure each N in turn and print the table."""
    rows = [await measure(clips, args) for clips in args.clips]
    say(f"## Rhombus calls per polling round ({machine()})")
    say()
    say(
        f"Bot: defaults (RHOMBUS_CALLS_PER_SECOND 5), POLL_INTERVAL_SECONDS "
        f"{args.poll_interval:g}; measured for {args.duration:g} s after {WARMUP_ROUNDS} rounds. "
        f"Naive poller: one getClipWithProgress per clip per round, {args.concurrency} in flight."
    )
    say()
    headers = [
        "live clips",
        "ideal (N/200)",
        "bot pages/round",
        "bot single calls/round",
        "bot calls/round",
        "bot max in a round",
        "naive calls/round",
        "naive/bot",
        "naive round s (p50)",
        "bot polls/round",
    ]
    say(table(headers, rows))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.rhombus_calls",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--clips", type=int, nargs="+", default=[200, 1000], help="live clips (200 1000)"
    )
    parser.add_argument("--duration", type=float, default=60.0, help="seconds measured (60)")
    parser.add_argument(
        "--poll-interval", type=float, default=5.0, help="the bot's POLL_INTERVAL_SECONDS (5)"
    )
    parser.add_argument(
        "--step-seconds", type=float, default=600.0, help="length of each clip stage, s (600)"
    )
    parser.add_argument(
        "--concurrency", type=int, default=20, help="naive poller's calls in flight (20)"
    )
    asyncio.run(run(parser.parse_args(argv)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
