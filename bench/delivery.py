"""A 500 MB clip delivered into Slack while 200 other clips are followed: memory and poll lateness.

    python -m bench.delivery [--clips 200] [--mb 500] [--baseline 30] [--warmup 20]

The Rhombus simulator holds the `bench` scenario with `--clips` clips (600 s stages: every clip
stays live) and one more clip of `--mb` MB (its `byteCount`, with a real `sha256Hex`), uploading;
the bot's database holds one followed tracking per clip (`bench/stage.py`). The real bot runs in
its own process with its defaults, video delivery on and VIDEO_MAX_MB above the clip. After the
warm-up it is measured for `--baseline` seconds following the clips; then the big clip is made
COMPLETE and the bot is measured again from that moment until the video is shared in its status
message's thread (the mp4 streamed from the simulator's media host to a temporary file, checked,
then streamed to the Slack stand-in's upload URL). Reported for both windows, from inside the
bot: poll lateness as in `bench.follow_many`, CPU, resident memory now and at its peak.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from bench.bot_process import BotProcess
from bench.figures import machine, ms, say, secs, table
from bench.stage import RhombusRequests, bot_settings, channels, store_trackings
from standins.rhombus import RhombusSimulator, media_sha256, stays
from standins.slack import SlackSimulator

if TYPE_CHECKING:
    from collections.abc import Sequence

    from bench.bot_process import Measurement

BIG_CLIP = "BenchBigClip000000000A"
BYTES_PER_SECOND = 250_000  # the simulator's footage rate: byteCount = durationSec x this
GOAL_GROWTH_MB = 50.0
GOAL_P99_LATENESS_SECONDS = 1.0
DELIVERY_TIMEOUT_SECONDS = 600.0
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024


@dataclass(frozen=True)
class Window:
    """One measured window."""

    name: str
    measured: Measurement
    peak_kb: int  # the most resident memory seen in the window

    def row(self, baseline_rss_kb: int) -> list[object]:
        """The window's line in the table."""
        measured = self.measured
        return [
            self.name,
            secs(measured.seconds),
            measured.submitted,
            ms(measured.late_p50),
            ms(measured.late_p99),
            ms(measured.late_max),
            measured.missed + measured.skipped + measured.errors,
            f"{measured.cpu_percent:.0f}",
            f"{measured.rss_kb / 1024:.0f}",
            f"{self.peak_kb / 1024:.0f}",
            f"{(self.peak_kb - baseline_rss_kb) / 1024:+.0f}",
        ]


@dataclass(frozen=True)
class Delivered:
    """What one run measured."""

    baseline: Window
    delivering: Window
    took: float  # from COMPLETE to the video shared in the thread
    after_edit: float  # from the final edit of its status message (the hand-over) to the share
    transfer: float  # from the download's request to the share
    intact: bool  # Slack received every byte, with Rhombus's digest
    received: int


async def measure(args: argparse.Namespace) -> Delivered:
    """Follow the clips alone, then while the big clip is delivered."""
    size = int(args.mb * 1_000_000)
    rhombus = RhombusSimulator.from_scenario(
        "bench", n_clips=args.clips, step_seconds=600.0, seed=1, max_exchanges=10
    )
    requests = RhombusRequests()
    rhombus.on_request = requests
    rhombus.add_clip(
        BIG_CLIP,
        title="Big clip",
        script=stays("UPLOADING", "Uploading video", 50),
        durationSec=size // BYTES_PER_SECOND,
    )
    digest = media_sha256(BIG_CLIP, size)
    peak = [0]  # the bot's largest RSS sampled while it delivers, KB
    channel_map = channels(20)
    slack = SlackSimulator(channels=channel_map)
    with tempfile.TemporaryDirectory(prefix="bench-") as folder:
        async with rhombus, slack:
            database = Path(folder) / "bot.db"
            await store_trackings(database, rhombus, slack, rhombus.clip_uuids, list(channel_map))
            settings = bot_settings(
                rhombus,
                slack,
                database,
                deliver_video=True,
                deliver_thumbnail=True,
                video_max_mb=args.mb * 2,
            )
            bot = await BotProcess.start(settings, Path(folder) / "bot.log")
            try:
                await asyncio.sleep(args.warmup)
                await bot.mark()
                await asyncio.sleep(args.baseline)
                measured = await bot.report()
                baseline = Window("following alone", measured, measured.rss_kb)

                await bot.mark()
                sampler = asyncio.create_task(_sample_rss(bot.pid, peak))
                started = time.monotonic()
                rhombus.set_clip(
                    BIG_CLIP,
                    status="COMPLETE",
                    currentOperation="Complete",
                    percentComplete=100,
                    sha256Hex=digest,
                )
                await slack.wait_for(
                    lambda s: any(file.shares for file in s.files.values() if file.length == size),
                    DELIVERY_TIMEOUT_SECONDS,
                )
                took = time.monotonic() - started
                sampler.cancel()
                delivering = Window(f"delivering {args.mb:g} MB", await bot.report(), peak[0])
            finally:
                await bot.stop()
    (video,) = [file for file in slack.files.values() if file.length == size]
    (fetched,) = requests.bot_between(
        started, math.inf, f"/media/metadata/us-west-2/{BIG_CLIP}.mp4"
    )
    (shared,) = [
        call.time
        for call in slack.calls_to("files.completeUploadExternal")
        if call.ok and video.id in str(call.args.get("files"))
    ]
    final_edit = min(
        call.time
        for call in slack.calls_to("chat.update")
        if call.ok and "Big clip" in str(call.args.get("text")) and call.time >= started
    )
    return Delivered(
        baseline=baseline,
        delivering=delivering,
        took=took,
        after_edit=shared - final_edit,
        transfer=shared - fetched,
        intact=(video.received, video.sha256) == (size, digest),
        received=video.received or 0,
    )


async def run(args: argparse.Namespace) -> bool:
    """Measure, print the tables; whether the goal was met."""
    result = await measure(args)
    baseline, delivering = result.baseline, result.delivering
    growth_mb = (delivering.peak_kb - baseline.measured.rss_kb) / 1024
    late = delivering.measured.late_p99
    dropped = sum(
        (delivering.measured.missed, delivering.measured.skipped, delivering.measured.errors)
    )
    met = (
        result.intact
        and growth_mb < GOAL_GROWTH_MB
        and late < GOAL_P99_LATENESS_SECONDS
        and dropped == 0
    )
    say(f"## A {args.mb:g} MB clip delivered while {args.clips} clips are followed ({machine()})")
    say()
    say(
        f"Bot: its defaults, DELIVER_VIDEO on, VIDEO_MAX_MB {args.mb * 2:g}. Clips: `bench` "
        f"scenario, 600 s stages, plus one {args.mb:g} MB clip made COMPLETE after "
        f"{args.warmup:g} s of warm-up and a {args.baseline:g} s baseline."
    )
    say()
    headers = [
        "window",
        "s",
        "polls started",
        "late p50 ms",
        "late p99 ms",
        "late max ms",
        "polls dropped or failed",
        "CPU %",
        "RSS MB at end",
        "peak RSS MB (sampled every 20 ms)",
        "peak above baseline MB",
    ]
    say(table(headers, [w.row(baseline.measured.rss_kb) for w in (baseline, delivering)]))
    say()
    say(
        f"Shared in the thread {result.took:.1f} s after Rhombus said COMPLETE: the poll that "
        f"sees it and the final edit of its message (which waits its turn in the workspace's "
        f"edit budget) came first; from that edit, {result.after_edit:.1f} s; from the "
        f"download's request, {result.transfer:.1f} s "
        f"({args.mb / result.transfer:.0f} MB/s: download, digest, upload). Slack received "
        f"{result.received:,} bytes, sha256 {'matches' if result.intact else 'DOES NOT MATCH'} "
        "Rhombus's."
    )
    say(
        f"Goal, memory growth < {GOAL_GROWTH_MB:g} MB and p99 lateness < "
        f"{GOAL_P99_LATENESS_SECONDS:g} s with no poll dropped: {'met' if met else 'MISSED'} "
        f"(growth {growth_mb:.0f} MB, p99 {late * 1000:.0f} ms)."
    )
    return met


async def _sample_rss(pid: int, peak: list[int]) -> None:
    """Keep the process's largest resident memory seen, in KB, every 20 ms."""
    statm = Path(f"/proc/{pid}/statm")
    while True:
        pages = int(statm.read_text().split()[1])  # noqa: ASYNC240  # a tiny /proc read
        peak[0] = max(peak[0], pages * PAGE_KB)
        await asyncio.sleep(0.02)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; 0 when the goal was met."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.delivery",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--clips", type=int, default=200, help="other live clips (200)")
    parser.add_argument("--mb", type=float, default=500.0, help="size of the big clip, MB (500)")
    parser.add_argument("--warmup", type=float, default=20.0, help="seconds before (20)")
    parser.add_argument("--baseline", type=float, default=30.0, help="seconds measured (30)")
    args = parser.parse_args(argv)
    return 0 if asyncio.run(run(args)) else 1


if __name__ == "__main__":
    raise SystemExit(main())
