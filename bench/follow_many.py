"""One process following many live clips: poll lateness, CPU and memory.

    python -m bench.follow_many [--clips 1000 10000] [--duration 60] [--warmup 20]

For each N the Rhombus simulator holds the `bench` scenario with N clips (slow stages, so all
stay live while measured) and the bot's database holds one followed tracking per clip, stored
directly (posting N status messages is not what is measured); the bot resumes them at start.
The real bot runs in its own process with its default settings (unless given below). After
`--warmup` seconds, for `--duration` seconds, it reports from inside: how late APScheduler
started each poll (`EVENT_JOB_SUBMITTED`: now - scheduled_run_time), when each poll finished,
polls dropped (misfired or still running), CPU time and resident memory. An idle bot (no clip)
is measured first: memory per clip is the RSS above it, divided by N.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from bench.figures import machine, ms, say, secs, table
from bench.stage import following
from standins.rhombus import GET_CLIP_PATH, LIST_CLIPS_PATH

if TYPE_CHECKING:
    from collections.abc import Sequence

    from bench.bot_process import Measurement

GOAL_P99_LATENESS_SECONDS = 1.0
IDLE_SECONDS = 5.0


@dataclass(frozen=True)
class Followed:
    """One run: what the bot reported from inside, and what the simulator and the parent saw."""

    clips: int
    measured: Measurement
    pages: int  # getClipsWithProgress calls in the measured window
    singles: int  # getClipWithProgress calls in the measured window
    start_seconds: float
    stop_seconds: float
    killed: bool

    def row(self, poll_interval: float, idle_rss_kb: int) -> list[object]:
        """The run's line in the table."""
        measured, seconds = self.measured, self.measured.seconds
        cpu_per_poll = measured.cpu_seconds / measured.done if measured.done else math.nan
        return [
            self.clips,
            measured.jobs,
            f"{self.clips / poll_interval:.0f}",
            f"{measured.submitted / seconds:.0f}",
            f"{measured.done / seconds:.0f}",
            ms(measured.late_p50),
            ms(measured.late_p99),
            ms(measured.late_max),
            secs(measured.done_p99),
            measured.missed,
            measured.skipped,
            measured.errors,
            f"{measured.cpu_percent:.0f}",
            ms(cpu_per_poll),
            f"{measured.rss_kb / 1024:.0f}",
            f"{(measured.rss_kb - idle_rss_kb) / self.clips:.1f}",
            f"{self.pages / seconds:.2f}",
            f"{self.singles / seconds:.1f}",
            secs(self.start_seconds),
            secs(self.stop_seconds) + (" (killed)" if self.killed else ""),
        ]


async def measure(clips: int, seconds: float, args: argparse.Namespace) -> Followed:
    """Follow `clips` clips for `seconds` after the warm-up."""
    settings: dict[str, object] = {"poll_interval_seconds": args.poll_interval}
    if args.rhombus_calls_per_second is not None:
        settings["rhombus_calls_per_second"] = args.rhombus_calls_per_second
    if args.log_level is not None:
        settings["log_level"] = args.log_level
    profile = args.profile.with_name(f"{args.profile.name}.{clips}") if args.profile else None
    async with following(
        clips, step_seconds=args.step_seconds, profile_path=profile, **settings
    ) as run:
        await asyncio.sleep(args.warmup if clips else 0.0)
        await run.bot.mark()
        start = time.monotonic()
        await asyncio.sleep(seconds)
        measured = await run.bot.report()
        end = time.monotonic()
    return Followed(
        clips=clips,
        measured=measured,
        pages=len(run.requests.bot_between(start, end, LIST_CLIPS_PATH)),
        singles=len(run.requests.bot_between(start, end, GET_CLIP_PATH)),
        start_seconds=run.bot.ready.start_seconds,
        stop_seconds=run.bot.stop_seconds,
        killed=run.bot.killed,
    )


async def run(args: argparse.Namespace) -> bool:
    """Measure an idle bot, then each N; whether the lateness goal was met at every N."""
    idle = (await measure(0, IDLE_SECONDS, args)).measured
    runs = [await measure(clips, args.duration, args) for clips in args.clips]
    met = all(
        one.measured.late_p99 < GOAL_P99_LATENESS_SECONDS
        and one.measured.missed + one.measured.skipped + one.measured.errors == 0
        for one in runs
    )
    say(f"## Following many live clips in one process ({machine()})")
    say()
    budget = args.rhombus_calls_per_second or 5
    say(
        f"Bot: its defaults, with POLL_INTERVAL_SECONDS {args.poll_interval:g}, "
        f"RHOMBUS_CALLS_PER_SECOND {budget:g}, LOG_LEVEL {args.log_level or 'INFO'}. Clips: "
        f"`bench` scenario, {args.step_seconds:g} s stages. Measured for {args.duration:g} s after "
        f"{args.warmup:g} s. An idle bot: {idle.rss_kb / 1024:.0f} MB RSS, "
        f"{idle.cpu_percent:.1f} % CPU."
    )
    say()
    headers = [
        "clips",
        "jobs",
        "polls/s at full pace",
        "polls/s started",
        "polls/s finished",
        "late p50 ms",
        "late p99 ms",
        "late max ms",
        "poll done p99 s",
        "misfired",
        "skipped (still running)",
        "poll errors",
        "CPU %",
        "CPU ms/poll",
        "RSS MB",
        "KB/clip above idle",
        "page calls/s",
        "single calls/s",
        "Bot.start s",
        "stop s",
    ]
    say(table(headers, [one.row(args.poll_interval, idle.rss_kb) for one in runs]))
    say()
    say(
        f"Goal, p99 lateness < {GOAL_P99_LATENESS_SECONDS:g} s with no poll dropped or failed: "
        f"{'met' if met else 'MISSED'}."
    )
    return met


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; 0 when the goal was met."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.follow_many",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--clips", type=int, nargs="+", default=[1000, 10000], help="live clips (1000 10000)"
    )
    parser.add_argument("--duration", type=float, default=60.0, help="seconds measured (60)")
    parser.add_argument("--warmup", type=float, default=20.0, help="seconds before (20)")
    parser.add_argument(
        "--poll-interval", type=float, default=5.0, help="the bot's POLL_INTERVAL_SECONDS (5)"
    )
    parser.add_argument(
        "--rhombus-calls-per-second",
        type=float,
        default=None,
        help="the bot's RHOMBUS_CALLS_PER_SECOND (its default, 5)",
    )
    parser.add_argument(
        "--step-seconds", type=float, default=600.0, help="length of each clip stage, s (600)"
    )
    parser.add_argument("--log-level", default=None, help="the bot's LOG_LEVEL (its default, INFO)")
    parser.add_argument(
        "--profile",
        type=Path,
        default=None,
        help="write cProfile statistics of each measured window to PROFILE.<clips>",
    )
    args = parser.parse_args(argv)
    return 0 if asyncio.run(run(args)) else 1


if __name__ == "__main__":
    raise SystemExit(main())
