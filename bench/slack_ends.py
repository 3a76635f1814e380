"""Ends at Slack's limit: how soon a clip's end reaches its message, against an ideal sender.

    python -m bench.slack_ends [--clips 150] [--every 1.2] [--shortest 60] [--longest 90]

The fake Slack enforces Slack's Tier 3 limit on `chat.update` (`--slack-limit`, 50 a minute per
workspace, sliding window: 429 with Retry-After beyond it). One `/clip` for one clip is sent
every `--every` seconds, in `--channels` channels of one workspace in turn, `--clips` in all;
each clip starts when it is asked for and moves through three stages (initiating, uploading
0-100 %, rendering 0-100 %, a third of its life each) to COMPLETE, its life drawn evenly from
`--shortest` to `--longest` seconds. The real bot runs in its own process with its default
settings, polling every `--poll-interval` seconds and sending `--edits-per-minute` edits a
minute, until every end is announced or `--minutes`. `--slack-latency` makes the fake Slack
answer `chat.update` and `chat.postMessage` that much later, as the real one does.

Reported, for the same run: how long after Rhombus reported each end (the simulator's script
time) its status message showed it, for the bot and for an ideal sender, which spends the same
Slack limit on final states only, sending each in the order the ends happened as soon as the
limit allows; their ratio at p95. The ideal sender is shown at the bot's own budget too
(`SLACK_EDITS_PER_MINUTE`, kept under Slack's limit for safety). The bot's time is split at the
moment a Rhombus answer first showed the end (read from the simulator's exchanges): finding
out, then editing. Progress edits are counted too, since ends must not silence them.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import random
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.bot_process import BotProcess
from bench.figures import machine, percentile, say, secs, table
from bench.load import CommandSender
from bench.slack_edits import (
    Followed,
    Shown,
    all_announced,
    slack_rows,
    status_messages,
)
from bench.stage import bot_settings, channels
from bot.config import Settings
from standins.rhombus import RhombusSimulator, completes
from standins.slack import RATE_LIMIT_WINDOW_SECONDS, SlackSimulator

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from standins.rhombus import Exchange

FINAL_STATUSES = frozenset({"COMPLETE", "FAILED"})
# The goal: the bot's p95 within twice the ideal's, or within this of it, whichever is larger.
GOAL_RATIO = 2.0
GOAL_MARGIN_SECONDS = 10.0


def ideal_delays(ends: Iterable[float], limit: int, window: float) -> list[float]:
    """Delays of a sender that sends only ends, in the order they happened, at once if it can.

    It keeps to the same sliding window as the fake Slack: at most `limit` calls in any `window`
    seconds, a call at `t` counting the calls in (t - window, t].
    """
    sent: list[float] = []
    delays = []
    for end in sorted(ends):
        at = max(end, sent[-1] if sent else end)
        if len(sent) >= limit:
            at = max(at, sent[-limit] + window)
        sent.append(at)
        delays.append(at - end)
    return delays


def ends_seen(exchanges: Iterable[Exchange]) -> dict[str, float]:
    """When a Rhombus answer first showed each clip in a final state, by clip id."""
    seen: dict[str, float] = {}
    for exchange in exchanges:
        answer: Any = exchange.response_json
        if not isinstance(answer, dict):
            continue
        clips = answer.get("savedClips") or [answer.get("clip")]
        for clip in clips:
            if isinstance(clip, dict) and clip.get("status") in FINAL_STATUSES:
                seen.setdefault(str(clip.get("uuid")), exchange.at)
    return seen


def progress_edits(one: Shown) -> int:
    """Edits of the message before the one that showed the end."""
    _, edits = one.live(math.inf)
    return edits


@dataclass(frozen=True)
class Run:
    """What one run left behind: the clips, both simulators, and when it started and ended."""

    followed: list[Followed]
    rhombus: RhombusSimulator
    slack: SlackSimulator
    start: float
    end: float


async def follow_one_by_one(args: argparse.Namespace) -> Run:
    """Ask for the clips one by one, then wait until every end is announced (or time is up)."""
    rhombus = RhombusSimulator(seed=1, max_exchanges=100_000)
    slack = SlackSimulator(
        channels=channels(args.channels), rate_limits={"chat.update": args.slack_limit}
    )
    if args.slack_latency > 0:
        for method in ("chat.update", "chat.postMessage"):
            slack.fail(method, delay=args.slack_latency, times=-1)
    lives = random.Random(args.seed)  # noqa: S311  # a benchmark's load, not cryptography
    channel_ids = list(channels(args.channels))
    followed: list[Followed] = []
    with tempfile.TemporaryDirectory(prefix="bench-ends-") as folder:
        async with rhombus, slack:
            settings = bot_settings(
                rhombus,
                slack,
                Path(folder) / "bot.db",
                poll_interval_seconds=args.poll_interval,
                slack_edits_per_minute=args.edits_per_minute,
            )
            bot = await BotProcess.start(settings, Path(folder) / "bot.log")
            sender = await CommandSender.start(
                f"http://127.0.0.1:{bot.ready.port}/slack/events", slack.base_url
            )
            try:
                start = time.monotonic()
                for index in range(args.clips):
                    await asyncio.sleep(max(0.0, start + index * args.every - time.monotonic()))
                    script = completes(lives.uniform(args.shortest, args.longest) / 3)
                    started = time.monotonic()
                    clip_id = rhombus.add_clip(title=f"Bench clip {index + 1:04d}", script=script)
                    followed.append(Followed(clip_id, script, started))
                    await sender.burst([clip_id], [channel_ids[index % len(channel_ids)]])
                deadline = start + 60 * args.minutes
                while not all_announced(slack, args.clips) and time.monotonic() < deadline:  # noqa: ASYNC110
                    await asyncio.sleep(1.0)
                end = time.monotonic()
            finally:
                await sender.stop()
                await bot.stop()
    return Run(followed, rhombus, slack, start, end)


def report(args: argparse.Namespace, run: Run) -> bool:
    """Print the tables; whether the goal was met."""
    messages = status_messages(run.slack)
    shown = [
        Shown(clip, messages[clip.clip_id].revisions)
        for clip in run.followed
        if clip.clip_id in messages
    ]
    ended = [one for one in shown if one.followed.ended < run.end]
    # An end the message did not show before the run ended counts as late as the run is long.
    bot = [run.end - one.followed.ended if (d := one.final_delay()) is None else d for one in ended]
    unshown = sum(one.final_delay() is None for one in ended)
    budget = args.edits_per_minute
    ends = [one.followed.ended for one in ended]
    ideal = ideal_delays(ends, args.slack_limit, RATE_LIMIT_WINDOW_SECONDS)
    ideal_budget = ideal_delays(ends, math.floor(budget), RATE_LIMIT_WINDOW_SECONDS)
    seen = ends_seen(run.rhombus.exchanges)
    finding = [seen.get(one.followed.clip_id, math.nan) - one.followed.ended for one in ended]
    editing = [delay - found for delay, found in zip(bot, finding, strict=True)]
    refused = sum(call.status == 429 for call in run.slack.calls)
    edits = [progress_edits(one) for one in shown]
    ratio = percentile(bot, 95) / percentile(ideal, 95)
    goal = max(GOAL_RATIO * percentile(ideal, 95), percentile(ideal, 95) + GOAL_MARGIN_SECONDS)

    say(f"## Ends at Slack's limit: {args.clips} clips, one workspace ({machine()})")
    say()
    say(
        f"Fake Slack limit: chat.update {args.slack_limit}/min (sliding), answering in "
        f"{args.slack_latency:g} s. Bot: defaults, SLACK_EDITS_PER_MINUTE {budget:g}, "
        f"POLL_INTERVAL_SECONDS {args.poll_interval:g}. "
        f"One `/clip` every {args.every:g} s in {args.channels} channels; each clip complete "
        f"{args.shortest:g}-{args.longest:g} s after it was asked for. Run: "
        f"{run.end - run.start:.0f} s; {len(ended)} clips ended in Rhombus during the run, "
        f"{len(ended) - unshown} of those ends shown."
    )
    say()
    say(
        table(
            ["method", "calls", "429s", "most in any 60 s", "per minute (mean)"],
            slack_rows(run.slack.calls, run.start, run.end),
        )
    )
    say()
    say(
        table(
            ["end shown after Rhombus reported it, s", "p50", "p90", "p95", "max"],
            [
                [label] + [secs(percentile(values, q)) for q in (50, 90, 95)] + [secs(max(values))]
                for label, values in (
                    (f"ideal sender: ends only, {args.slack_limit}/min", ideal),
                    (f"ideal sender: ends only, {budget:g}/min", ideal_budget),
                    ("bot", bot),
                    ("... until a Rhombus answer showed it", finding),
                    ("... then until the edit showed it", editing),
                )
            ],
        )
    )
    say()
    say(
        f"Progress edits: {sum(edits)} ({sum(n > 0 for n in edits)} of {len(shown)} messages "
        "showed some progress between the status message and its end)."
    )
    met = (
        refused == 0
        and unshown == 0
        and len(ended) == args.clips
        and percentile(bot, 95) <= goal
        and sum(edits) > 0
    )
    say()
    say(
        f"p95: bot {secs(percentile(bot, 95))} s, ideal {secs(percentile(ideal, 95))} s, ratio "
        f"{ratio:.2f}. Goal (p95 at most {secs(goal)} s: {GOAL_RATIO:g}x the ideal's or "
        f"{GOAL_MARGIN_SECONDS:g} s more, whichever is larger; no 429; progress shown): "
        f"{'met' if met else 'MISSED'} ({refused} 429s, {unshown} ends not shown)."
    )
    return met


async def run(args: argparse.Namespace) -> bool:
    """Run the scenario and report it; whether the goal was met."""
    return report(args, await follow_one_by_one(args))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; 0 when the goal was met."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.slack_ends",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--clips", type=int, default=150, help="clips asked for (150)")
    parser.add_argument("--every", type=float, default=1.2, help="one /clip every, s (1.2)")
    parser.add_argument("--channels", type=int, default=5, help="channels, one workspace (5)")
    parser.add_argument("--shortest", type=float, default=60.0, help="shortest clip life, s (60)")
    parser.add_argument("--longest", type=float, default=90.0, help="longest clip life, s (90)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the clips' lives (1)")
    parser.add_argument(
        "--minutes", type=float, default=8.0, help="run at most this long, minutes (8)"
    )
    parser.add_argument(
        "--poll-interval", type=float, default=5.0, help="the bot's POLL_INTERVAL_SECONDS (5)"
    )
    parser.add_argument(
        "--edits-per-minute",
        type=float,
        default=Settings.model_fields["slack_edits_per_minute"].default,
        help="the bot's SLACK_EDITS_PER_MINUTE (its default)",
    )
    parser.add_argument(
        "--slack-latency",
        type=float,
        default=0.0,
        help="seconds fake Slack takes to answer chat.update and chat.postMessage (0)",
    )
    parser.add_argument(
        "--slack-limit", type=int, default=50, help="fake Slack's chat.update limit a minute (50)"
    )
    args = parser.parse_args(argv)
    return 0 if asyncio.run(run(args)) else 1


if __name__ == "__main__":
    raise SystemExit(main())
