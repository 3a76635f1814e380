"""Many live clips in one workspace: Slack's rate limit kept, final states first, none far behind.

    python -m bench.slack_edits [--clips 200] [--minutes 4] [--last-end 600]

The fake Slack enforces Slack's Tier 3 limit on `chat.update` (`--slack-limit`, 50 a minute per
workspace, sliding window: 429 with Retry-After beyond it). `--clips` clips are asked for with
`/clip` at the start (five per command, 40 commands at once, over 20 channels of one workspace).
Every clip progresses all the time (initiating, uploading 0-100 %, rendering 0-100 %, each a
third of its life) and its end comes at its own time, evenly spread from `--first-end` to
`--last-end` seconds after the start; in every ten, nine complete and one fails while rendering.
The real bot runs in its own process with its default settings (48 edits a minute), polling
every `--poll-interval` seconds, for `--minutes` or until every clip's end is announced.

Reported: Slack calls per minute in the workspace and 429s; how long after Rhombus reported a
clip's end (from the simulator's script) the status message showed it; and how far behind
Rhombus each message fell: for each state a message showed, the time from the moment Rhombus
moved on from that state (script time) to the next edit; a message's worst such time is its
staleness. The bot edits a live message when its status or operation changes or its bar fills
another tenth, so staleness is given both by the percentage and by the tenth of the bar; the goal
is judged on the second.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from bench.bot_process import BotProcess
from bench.figures import busiest_window, machine, percentile, say, secs, table
from bench.load import CommandSender
from bench.stage import bot_settings, channels
from bot.config import Settings
from bot.progress import EDIT_STEP_PERCENT
from standins.rhombus import RhombusSimulator, completes, fails
from standins.slack import SlackSimulator

if TYPE_CHECKING:
    from collections.abc import Sequence

    from standins.rhombus import Step
    from standins.slack import Call, Message, Revision

CLIPS_PER_COMMAND = 5
CHANNELS = 20
FINAL_DELAY_GOAL_SECONDS = 60.0
STALENESS_GOAL_SECONDS = 180.0  # "a few minutes"
# The summary the fallback text ends with: "Clip “title” — Uploading 42%".
_SHOWN = re.compile(r" — (?P<label>[A-Za-z ]+?)(?: (?P<percent>\d+)%)?(?::.*)?$")
_STATUS_OF_LABEL = {
    "Initiating": "INITIATING",
    "Uploading": "UPLOADING",
    "Rendering": "RENDERING",
    "Ready": "COMPLETE",
    "Failed": "FAILED",
}
_FINAL_STATUSES = frozenset({"COMPLETE", "FAILED"})


@dataclass(frozen=True)
class Followed:
    """A clip of the run: its script and when it started on the simulator's clock."""

    clip_id: str
    script: tuple[Step, ...]
    started: float  # time.monotonic() the script counts from

    @property
    def ended(self) -> float:
        """When Rhombus started reporting the clip's end."""
        return self.started + self.script[-1].after_seconds

    def left(self, status: str, percent: int | None) -> float:
        """When Rhombus moved on from showing `status` at `percent` (inf: it never does)."""
        for index, step in enumerate(self.script):
            if step.status != status:
                continue
            if index + 1 == len(self.script):
                return math.inf
            following = self.script[index + 1].after_seconds
            start, end = step.percent_complete, step.percent_end
            if percent is None or start is None or end is None or end == start:
                return self.started + following
            # The simulator moves the percentage evenly over the stage, in whole steps.
            span = following - step.after_seconds
            moved = percent - start + 1
            return self.started + min(following, step.after_seconds + span * moved / (end - start))
        return math.inf  # a state the script never shows: nothing to be behind


@dataclass(frozen=True)
class Shown:
    """What one status message showed over time."""

    followed: Followed
    revisions: list[Revision]

    def final_delay(self) -> float | None:
        """Seconds from Rhombus reporting the end to the edit that showed it (None: never)."""
        for revision in self.revisions:
            status, _ = _shown_state(revision.text)
            if status in _FINAL_STATUSES:
                return revision.time - self.followed.ended
        return None

    def live(self, until: float) -> tuple[float, int]:
        """Seconds the message was live (posted, end not shown), and its edits in that time."""
        edits = 0
        for revision in self.revisions[1:]:
            status, _ = _shown_state(revision.text)
            if status in _FINAL_STATUSES:
                return revision.time - self.revisions[0].time, edits
            edits += 1
        return until - self.revisions[0].time, edits

    def staleness(self, until: float, segment: int = 1) -> float:
        """The longest time the message showed a state Rhombus had already moved on from.

        With `segment` > 1 a percentage counts as current until Rhombus leaves its segment of
        the bar (e.g. 43 % until 50 %, for tenths).
        """
        worst = 0.0
        for index, revision in enumerate(self.revisions):
            status, percent = _shown_state(revision.text)
            if status is None:
                continue
            if percent is not None:
                percent = (percent // segment + 1) * segment - 1
            replaced = self.revisions[index + 1].time if index + 1 < len(self.revisions) else until
            worst = max(worst, replaced - self.followed.left(status, percent))
        return worst


def _shown_state(text: str) -> tuple[str | None, int | None]:
    match = _SHOWN.search(text)
    if match is None:
        return None, None
    percent = match.group("percent")
    return _STATUS_OF_LABEL.get(match.group("label")), int(percent) if percent else None


def add_clips(
    rhombus: RhombusSimulator, count: int, first_end: float, last_end: float
) -> list[Followed]:
    """Nine in ten complete, one fails; the ends evenly spread from `first_end` to `last_end`."""
    added = []
    for index in range(count):
        end = first_end + (last_end - first_end) * index / max(1, count - 1)
        script = (fails if index % 10 == 9 else completes)(end / 3)
        started = time.monotonic()
        clip_id = rhombus.add_clip(title=f"Bench clip {index + 1:04d}", script=script)
        added.append(Followed(clip_id, script, started))
    return added


def status_messages(slack: SlackSimulator) -> dict[str, Message]:
    """The bot's status messages, by the clip they show (from their metadata)."""
    found = {}
    for message in slack.messages.values():
        payload = (message.metadata or {}).get("event_payload") or {}
        clip_id = payload.get("clip_id")
        if message.thread_ts is None and isinstance(clip_id, str):
            found[clip_id] = message
    return found


def all_announced(slack: SlackSimulator, clips: int) -> bool:
    """Whether every clip's end was shown and announced in its thread."""
    replies = sum(1 for message in slack.messages.values() if message.thread_ts and message.bot_id)
    return replies >= clips


def slack_rows(calls: Sequence[Call], start: float, end: float) -> list[list[object]]:
    """Calls, 429s and calls per minute for each method the bot used to write messages."""
    rows: list[list[object]] = []
    minutes = max(1e-9, (end - start) / 60)
    for method in ("chat.update", "chat.postMessage"):
        made = [call for call in calls if call.method == method]
        passed = [call.time for call in made if call.status != 429]
        rows.append(
            [
                method,
                len(made),
                sum(call.status == 429 for call in made),
                busiest_window(passed, 60.0),
                f"{len(passed) / minutes:.1f}",
            ]
        )
    return rows


async def run(args: argparse.Namespace) -> bool:
    """Follow the clips until every end is announced; whether the goals were met."""
    rhombus = RhombusSimulator(seed=1, max_exchanges=100)
    slack = SlackSimulator(
        channels=channels(CHANNELS), rate_limits={"chat.update": args.slack_limit}
    )
    with tempfile.TemporaryDirectory(prefix="bench-slack-") as folder:
        async with rhombus, slack:
            followed = add_clips(rhombus, args.clips, args.first_end, args.last_end)
            settings = bot_settings(
                rhombus,
                slack,
                Path(folder) / "bot.db",
                poll_interval_seconds=args.poll_interval,
            )
            bot = await BotProcess.start(settings, Path(folder) / "bot.log")
            sender = await CommandSender.start(
                f"http://127.0.0.1:{bot.ready.port}/slack/events", slack.base_url
            )
            try:
                start = time.monotonic()
                ids = [clip.clip_id for clip in followed]
                commands = [
                    " ".join(ids[n : n + CLIPS_PER_COMMAND])
                    for n in range(0, len(ids), CLIPS_PER_COMMAND)
                ]
                await sender.burst(commands, list(channels(CHANNELS)))
                deadline = start + 60 * args.minutes
                while not all_announced(slack, args.clips) and time.monotonic() < deadline:  # noqa: ASYNC110
                    await asyncio.sleep(1.0)
                end = time.monotonic()
            finally:
                await sender.stop()
                await bot.stop()

    messages = status_messages(slack)
    shown = [
        Shown(clip, messages[clip.clip_id].revisions)
        for clip in followed
        if clip.clip_id in messages
    ]
    ended = [one for one in shown if one.followed.ended < end]
    # An end Rhombus reported but the message did not show yet counts as late as the run is long.
    delays = [
        end - one.followed.ended if (delay := one.final_delay()) is None else delay for one in ended
    ]
    unshown = sum(one.final_delay() is None for one in ended)
    behind = [one.staleness(end) for one in shown]
    behind_bar = [one.staleness(end, EDIT_STEP_PERCENT) for one in shown]
    live = [one.live(end) for one in shown]
    progress_edits = sum(edits for _, edits in live)
    refresh = sum(seconds for seconds, _ in live) / progress_edits if progress_edits else math.inf
    too_late = sum(delay > FINAL_DELAY_GOAL_SECONDS for delay in delays)
    refused = sum(call.status == 429 for call in slack.calls)

    budget = Settings.model_fields["slack_edits_per_minute"].default
    say(f"## Slack edits of {args.clips} live clips in one workspace ({machine()})")
    say()
    say(
        f"Fake Slack limit: chat.update {args.slack_limit}/min (sliding). Bot: defaults "
        f"(SLACK_EDITS_PER_MINUTE {budget:g}), POLL_INTERVAL_SECONDS {args.poll_interval:g}. "
        f"Clips: ends spread over {args.first_end:g}-{args.last_end:g} s after the commands. Run: "
        f"{end - start:.0f} s, {len(messages)} status messages; {len(ended)} clips ended in "
        f"Rhombus during the run, {len(ended) - unshown} of those ends shown."
    )
    say()
    say(
        table(
            ["method", "calls", "429s", "most in any 60 s", "per minute (mean)"],
            slack_rows(slack.calls, start, end),
        )
    )
    say()
    say(
        table(
            ["seconds", "p50", "p90", "max"],
            [
                ["end shown after Rhombus reported it"]
                + [secs(percentile(delays, q)) for q in (50, 90)]
                + [secs(max(delays, default=math.nan))],
                ["staleness: a message's longest time behind Rhombus"]
                + [secs(percentile(behind, q)) for q in (50, 90)]
                + [secs(max(behind, default=math.nan))],
                ["... behind Rhombus's status and tenth of the bar"]
                + [secs(percentile(behind_bar, q)) for q in (50, 90)]
                + [secs(max(behind_bar, default=math.nan))],
            ],
        )
    )
    say()
    say(
        f"While live, a message was edited every {refresh:.0f} s on average ({progress_edits} "
        f"progress edits in {sum(seconds for seconds, _ in live) / 60:.0f} live message-minutes): "
        "in a run shorter than that, staleness is bounded by the run, not by the bot."
    )
    # A message edited every `refresh` seconds on average falls that far behind, however short
    # the run that measured it.
    too_far = sum(b > STALENESS_GOAL_SECONDS for b in behind_bar)
    met = (
        refused == 0
        and len(messages) == args.clips
        and too_late == 0
        and too_far == 0
        and refresh <= STALENESS_GOAL_SECONDS
    )
    say()
    say(
        f"Goals (no 429, every end shown within {FINAL_DELAY_GOAL_SECONDS:.0f} s, no message more "
        f"than {STALENESS_GOAL_SECONDS:.0f} s behind, nor edited less often): "
        f"{'met' if met else 'MISSED'} ({refused} 429s, {too_late} ends later than "
        f"{FINAL_DELAY_GOAL_SECONDS:.0f} s, {unshown} not shown yet when the run ended, "
        f"{too_far} messages more than {STALENESS_GOAL_SECONDS:.0f} s behind, live messages "
        f"edited every {refresh:.0f} s)."
    )
    return met


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; 0 when the goals were met."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.slack_edits",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--clips", type=int, default=200, help="clips followed (200)")
    parser.add_argument(
        "--minutes", type=float, default=4.0, help="run at most this long, minutes (4)"
    )
    parser.add_argument(
        "--first-end", type=float, default=60.0, help="the first clip ends after, s (60)"
    )
    parser.add_argument(
        "--last-end", type=float, default=600.0, help="the last clip ends after, s (600)"
    )
    parser.add_argument(
        "--poll-interval", type=float, default=5.0, help="the bot's POLL_INTERVAL_SECONDS (5)"
    )
    parser.add_argument(
        "--slack-limit", type=int, default=50, help="fake Slack's chat.update limit a minute (50)"
    )
    args = parser.parse_args(argv)
    return 0 if asyncio.run(run(args)) else 1


if __name__ == "__main__":
    raise SystemExit(main())
