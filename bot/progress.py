"""What one Rhombus answer means for a followed clip: a new message or not, its end, the next poll.

Pure: the time and a random draw are inputs, so every rule here is tested with tables. The
tracker carries out what `judge` decides.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import NamedTuple

from bot.budget import Backoff
from bot.clips import Clip, ClipStatus, Ending

# Answers of `error: true` in a row, while following, before the clip counts as gone.
REJECTIONS_BEFORE_NOT_FOUND = 3
# A live message is edited when the bar fills one more of its ten segments, not at every percent:
# a workspace's edits are few (Slack allows about 50 a minute), and many messages share them.
EDIT_STEP_PERCENT = 10
UNREACHABLE_NOTICE = "Rhombus unreachable, retrying"
NOTICE_LIMIT = 500  # the notice column's size
MAX_BACKOFF_SECONDS = 300.0
# Each poll without progress waits this much longer than the one before (up to the maximum).
STALL_FACTOR = 1.5
# How long after a splice Rhombus may still not know the clip it returned: Rhombus's own Java
# example (rhombus-api-examples-java, EmbedRhombusFootageInExternalApplication.java) polls
# until the saved clip appears, so it is starting, not gone.
SPLICE_GRACE_SECONDS = 60.0


@dataclass(frozen=True)
class Pacing:
    """How often a clip is polled, and how long the bot waits for it before giving up."""

    interval: float = 5.0
    max_interval: float = 60.0
    give_up_after: float = 30 * 60.0

    @functools.cached_property
    def failures(self) -> Backoff:
        """Polls of a clip Rhombus cannot answer for: exponential, capped at five minutes."""
        return Backoff(self.interval, 2.0, MAX_BACKOFF_SECONDS)

    @functools.cached_property
    def stalls(self) -> Backoff:
        """Polls of a clip that makes no progress: less and less often, up to `max_interval`."""
        cap = max(self.interval, self.max_interval)
        # A narrow spread: clips seen stalled together (one page) are not polled in lockstep.
        return Backoff(self.interval, STALL_FACTOR, cap, spread=(0.9, 1.1))


@dataclass(frozen=True)
class Rejected:
    """Rhombus answered `error: true` for the clip; `reason` is its message."""

    reason: str


@dataclass(frozen=True)
class Unreachable:
    """Rhombus could not be asked (outage, timeout, 5xx, 429); wait at least `retry_after`."""

    reason: str
    retry_after: float = 0.0


Answer = Clip | Rejected | Unreachable


class Progress(NamedTuple):
    """What is known of a followed clip between two polls.

    `shown*`, `notice` and the times are what its status message shows (and its row stores);
    `seen*` is the clip as last observed, which may be ahead of the message.
    """

    started_at: float
    changed_at: float
    progress_at: float  # when the clip last moved
    reached_at: float | None  # when Rhombus last answered
    shown: Clip | None = None
    shown_percent: int | None = None
    notice: str | None = None  # a line about trouble, shown under the status
    seen: Clip | None = None
    seen_percent: int | None = None
    failures: int = 0  # failed polls in a row
    rejections: int = 0  # `error: true` answers in a row
    stalls: int = 0  # polls in a row without progress
    # The message must be brought up to date whatever the next answer is (what it shows is not
    # known, e.g. after a crash).
    stale: bool = False


class Verdict(NamedTuple):
    """What an answer means: the new state, whether the message changes, and how it ends."""

    progress: Progress
    changed: bool  # what the message shows changed: render, store, edit
    ending: Ending | None = None
    delay: float | None = None  # poll next in this many seconds; None: at the regular interval


def still_starting(
    answer: Answer, *, made_at: float | None, now: float, retried_at: float | None = None
) -> bool:
    """Whether an answer is of a clip (re)made moments ago that Rhombus has not caught up with.

    A clip made from Slack may be unknown for a moment after the splice; a retried one may still
    read FAILED for a moment after retrySplice.
    """
    if isinstance(answer, Rejected):
        return made_at is not None and 0 <= now - made_at < SPLICE_GRACE_SECONDS
    return (
        isinstance(answer, Clip)
        and answer.ending is Ending.FAILED
        and retried_at is not None
        and 0 <= now - retried_at < SPLICE_GRACE_SECONDS
    )


def judge(
    progress: Progress, answer: Answer, *, now: float, pacing: Pacing, draw: float
) -> Verdict:
    """What Rhombus's answer about a followed clip means; `draw` is a random number in [0, 1)."""
    if isinstance(answer, Rejected):
        return _rejected(progress, answer, now=now, pacing=pacing, draw=draw)
    if isinstance(answer, Unreachable):
        return _unreachable(progress, answer, now=now, pacing=pacing, draw=draw)
    return _answered(progress, answer, now=now, pacing=pacing, draw=draw)


def _rejected(
    progress: Progress, answer: Rejected, *, now: float, pacing: Pacing, draw: float
) -> Verdict:
    # A clip seen a moment ago that Rhombus now refuses is most likely deleted, but Rhombus also
    # answers `error: true` for passing trouble: believe it a few times over.
    failures, rejections = progress.failures + 1, progress.rejections + 1
    delay = pacing.failures.delay(failures, draw)
    if rejections < REJECTIONS_BEFORE_NOT_FOUND:
        notice = f"Rhombus answered: {answer.reason}; retrying"[:NOTICE_LIMIT]
        after = progress._replace(failures=failures, rejections=rejections, notice=notice)
        return Verdict(after, changed=notice != progress.notice, delay=delay)
    after = progress._replace(
        failures=failures,
        rejections=rejections,
        notice=answer.reason[:NOTICE_LIMIT],
        changed_at=now,
    )
    return Verdict(after, changed=True, ending=Ending.NOT_FOUND, delay=delay)


def _unreachable(
    progress: Progress, answer: Unreachable, *, now: float, pacing: Pacing, draw: float
) -> Verdict:
    failures = progress.failures + 1
    delay = max(pacing.failures.delay(failures, draw), answer.retry_after)
    after = progress._replace(failures=failures, notice=UNREACHABLE_NOTICE)
    if now - (progress.reached_at or progress.started_at) > pacing.give_up_after:
        after = after._replace(changed_at=now)
        return Verdict(after, changed=True, ending=Ending.UNREACHABLE, delay=delay)
    return Verdict(after, changed=progress.notice != UNREACHABLE_NOTICE, delay=delay)


def _answered(
    progress: Progress, clip: Clip, *, now: float, pacing: Pacing, draw: float
) -> Verdict:
    seen, percent = progress.seen, clip.percent
    if (
        seen is not None
        and percent is not None
        and progress.seen_percent is not None
        and seen.status == clip.status
        and seen.current_operation == clip.current_operation
    ):
        # Within one operation the bar only moves forward, whatever Rhombus reports.
        percent = max(percent, progress.seen_percent)
    progressed = seen is None or _progress_key(seen, progress.seen_percent) != _progress_key(
        clip, percent
    )
    progress_at = now if progressed else progress.progress_at
    if progressed:
        stalls = 0
        delay = pacing.interval if progress.stalls else None
    else:
        stalls = progress.stalls + 1
        delay = pacing.stalls.delay(stalls, draw)
    ending = clip.ending
    if ending is None and now - progress_at > pacing.give_up_after:
        ending = Ending.GAVE_UP
    shown = progress.shown
    changed = (
        ending is not None
        or progress.stale
        or progress.notice is not None
        or shown is None
        or _step(percent) != _step(progress.shown_percent)
        or not _same_besides_progress(shown, clip)
    )
    # Built whole, not by `_replace`: this runs for every poll of every clip.
    after = Progress(
        started_at=progress.started_at,
        changed_at=now if changed else progress.changed_at,
        progress_at=progress_at,
        reached_at=now,
        shown=clip if changed else shown,
        shown_percent=percent if changed else progress.shown_percent,
        notice=None,
        seen=clip,
        seen_percent=percent,
        stalls=stalls,
        stale=progress.stale,
    )
    return Verdict(after, changed=changed, ending=ending if changed else None, delay=delay)


# What Rhombus changes as a clip merely progresses; any other field is worth an edit at once.
_PROGRESS_FIELDS = frozenset({"percent_complete", "last_updated_sec"})
_SHOWN_FIELDS = tuple(name for name in Clip.model_fields if name not in _PROGRESS_FIELDS)


def _same_besides_progress(shown: Clip, seen: Clip) -> bool:
    return all(getattr(shown, name) == getattr(seen, name) for name in _SHOWN_FIELDS)


def _step(percent: int | None) -> int | None:
    """The bar segment a percentage fills up to."""
    return None if percent is None else percent // EDIT_STEP_PERCENT


def _progress_key(clip: Clip, percent: int | None) -> tuple[ClipStatus, str | None, int | None]:
    return (clip.status, clip.current_operation, percent)
