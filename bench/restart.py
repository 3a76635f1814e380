"""A restart resumes many stored trackings quickly, without a burst of Rhombus calls.

    python -m bench.restart [--clips 10000] [--rounds 2]

The database holds `--clips` followed trackings of a `bench` organisation (stored directly, as a
bot that was following them would have left them), and the real bot is started in its own
process with its default settings, as after a restart. Reported: how long `Bot.start` took until
every job was scheduled (and the process from launch to ready, imports included); then, over the
first `--rounds` polling rounds, the polls started and the Rhombus calls made, and the most of
each in any 100 ms.
"""

from __future__ import annotations

import argparse
import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bench.figures import busiest_window, machine, ms, say, secs, table
from bench.stage import following
from standins.rhombus import GET_CLIP_PATH, LIST_CLIPS_PATH

if TYPE_CHECKING:
    from collections.abc import Sequence

GOAL_START_SECONDS = 5.0
WINDOW_SECONDS = 0.1
# The bot's Rhombus client lets at most this many calls out at once (twice its 5 a second).
CLIENT_BURST = 10
# First polls spread evenly over one interval start N/(interval/0.1 s) in any 100 ms; allow twice.
SPREAD_SLACK = 2.0


@dataclass(frozen=True)
class Verdict:
    """Which parts of the goal one restart met."""

    quick: bool  # every tracking scheduled within GOAL_START_SECONDS
    calls_spread: bool  # Rhombus calls no burstier than the client's own budget
    polls_spread: bool  # polls no burstier than SPREAD_SLACK times an even spread


async def measure(clips: int, args: argparse.Namespace) -> tuple[list[object], Verdict]:
    """Restart with `clips` stored trackings; the table's row, and what it met."""
    async with following(
        clips, step_seconds=args.step_seconds, poll_interval_seconds=args.poll_interval
    ) as run:
        ready = run.bot.ready
        await asyncio.sleep(args.rounds * args.poll_interval)
        measured = await run.bot.report()
    end = ready.at + args.rounds * args.poll_interval
    calls = run.requests.bot_between(ready.started_at, end)
    pages = run.requests.bot_between(ready.started_at, end, LIST_CLIPS_PATH)
    singles = run.requests.bot_between(ready.started_at, end, GET_CLIP_PATH)
    even = clips / (args.poll_interval / WINDOW_SECONDS)
    verdict = Verdict(
        quick=ready.jobs == clips and ready.start_seconds < GOAL_START_SECONDS,
        calls_spread=busiest_window(calls, WINDOW_SECONDS) <= CLIENT_BURST,
        polls_spread=measured.busiest_100ms <= SPREAD_SLACK * even,
    )
    return [
        clips,
        ready.jobs,
        secs(ready.start_seconds, 2),
        secs(ready.at - run.bot.launched_at, 2),
        measured.submitted,
        f"{measured.busiest_100ms} (even: {even:.0f})",
        ms(measured.late_p99),
        f"{len(calls)} ({len(pages)} pages, {len(singles)} single)",
        busiest_window(calls, WINDOW_SECONDS),
    ], verdict


async def run(args: argparse.Namespace) -> bool:
    """Restart with each number of stored trackings; whether every start was quick enough."""
    measured = [await measure(clips, args) for clips in args.clips]
    say(f"## Restart with stored trackings ({machine()})")
    say()
    say(
        f"Bot: defaults, POLL_INTERVAL_SECONDS {args.poll_interval:g} (first polls spread over "
        f"one interval). Polls and calls counted over the first {args.rounds} rounds "
        f"({args.rounds * args.poll_interval:g} s from Bot.start)."
    )
    say()
    headers = [
        "stored trackings",
        "jobs scheduled",
        "Bot.start s",
        "launch to ready s",
        "polls started",
        "most polls in 100 ms",
        "poll late p99 ms",
        "Rhombus calls",
        "most calls in 100 ms",
    ]
    say(table(headers, [row for row, _ in measured]))
    verdicts = [verdict for _, verdict in measured]
    parts = {
        f"every tracking scheduled within {GOAL_START_SECONDS:g} s": all(v.quick for v in verdicts),
        f"Rhombus calls spread (at most {CLIENT_BURST} in any 100 ms)": all(
            v.calls_spread for v in verdicts
        ),
        f"polls spread (at most {SPREAD_SLACK:g}x an even spread in any 100 ms)": all(
            v.polls_spread for v in verdicts
        ),
    }
    say()
    for part, met in parts.items():
        say(f"Goal, {part}: {'met' if met else 'MISSED'}.")
    return all(parts.values())


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; 0 when the goal was met."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.restart",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--clips", type=int, nargs="+", default=[10000], help="stored trackings (10000)"
    )
    parser.add_argument("--rounds", type=int, default=2, help="polling rounds watched (2)")
    parser.add_argument(
        "--poll-interval", type=float, default=5.0, help="the bot's POLL_INTERVAL_SECONDS (5)"
    )
    parser.add_argument(
        "--step-seconds", type=float, default=600.0, help="length of each clip stage, s (600)"
    )
    args = parser.parse_args(argv)
    return 0 if asyncio.run(run(args)) else 1


if __name__ == "__main__":
    raise SystemExit(main())
