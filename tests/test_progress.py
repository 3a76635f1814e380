"""What one Rhombus answer means for a followed clip, as tables: no clock, no scheduler."""

from __future__ import annotations

from typing import Any

import pytest

from bot.budget import Backoff
from bot.clips import Clip, ClipStatus, Ending
from bot.progress import (
    UNREACHABLE_NOTICE,
    Answer,
    Pacing,
    Progress,
    Rejected,
    Unreachable,
    judge,
    still_starting,
)

PACING = Pacing(interval=5.0, max_interval=60.0, give_up_after=1800.0)
DRAW = 0.5  # the middle of every spread: failures x0.75, stalls x1.0


def clip(status: str = "UPLOADING", percent: int | None = 20, **fields: Any) -> Clip:
    """A clip as Rhombus answers it."""
    operation = {"UPLOADING": "Uploading video", "RENDERING": "Rendering video"}.get(status)
    values = {"status": status, "percentComplete": percent, "currentOperation": operation}
    return Clip.model_validate(values | fields)


UPLOADING_20 = clip()
FOLLOWED = Progress(
    started_at=0.0,
    changed_at=0.0,
    progress_at=0.0,
    reached_at=0.0,
    shown=UPLOADING_20,
    shown_percent=20,
    seen=UPLOADING_20,
    seen_percent=20,
)


def state(**changes: Any) -> Progress:
    """The followed clip above, with some of what is known of it changed."""
    return FOLLOWED._replace(**changes)


# (what is known, the answer, when) -> (message changes, ending, next poll, notice, bar shows)
CASES = [
    pytest.param(
        FOLLOWED, UPLOADING_20, 10.0, (False, None, 7.5, None, 20), id="same-answer-is-a-stall"
    ),
    pytest.param(
        FOLLOWED, clip(percent=25), 10.0, (False, None, None, None, 20), id="same-tenth-no-edit"
    ),
    pytest.param(
        FOLLOWED, clip(percent=31), 10.0, (True, None, None, None, 31), id="next-tenth-edits"
    ),
    pytest.param(
        FOLLOWED, clip(percent=15), 10.0, (False, None, 7.5, None, 20), id="bar-never-moves-back"
    ),
    pytest.param(
        FOLLOWED, clip("RENDERING", 0), 10.0, (True, None, None, None, 0), id="new-status-edits"
    ),
    pytest.param(
        FOLLOWED,
        clip(title="Renamed"),
        10.0,
        (True, None, 7.5, None, 20),
        id="new-title-edits-though-stalled",
    ),
    pytest.param(
        FOLLOWED,
        clip("COMPLETE", 100, currentOperation="Complete"),
        10.0,
        (True, Ending.COMPLETE, None, None, 100),
        id="complete",
    ),
    pytest.param(
        FOLLOWED,
        clip("UPLOADING", 100, currentOperation="Complete"),
        10.0,
        (True, Ending.COMPLETE, None, None, 100),
        id="complete-by-the-players-rule",
    ),
    pytest.param(
        FOLLOWED, clip("FAILED", None), 10.0, (True, Ending.FAILED, None, None, None), id="failed"
    ),
    pytest.param(
        FOLLOWED,
        clip("DELETED", None),
        10.0,
        (True, Ending.DELETED, None, None, None),
        id="deleted",
    ),
    pytest.param(
        FOLLOWED,
        UPLOADING_20,
        1800.5,
        (True, Ending.GAVE_UP, 7.5, None, 20),
        id="no-progress-for-too-long-gives-up",
    ),
    pytest.param(
        state(progress_at=1000.0),
        UPLOADING_20,
        1800.5,
        (False, None, 7.5, None, 20),
        id="recent-progress-keeps-following",
    ),
    pytest.param(
        state(stale=True), UPLOADING_20, 10.0, (True, None, 7.5, None, 20), id="stale-edits"
    ),
    pytest.param(
        state(shown=None, shown_percent=None),
        UPLOADING_20,
        10.0,
        (True, None, 7.5, None, 20),
        id="first-answer-edits",
    ),
    pytest.param(
        state(notice=UNREACHABLE_NOTICE, failures=2),
        clip(percent=22),
        10.0,
        (True, None, None, None, 22),
        id="answer-clears-the-notice",
    ),
    pytest.param(
        state(stalls=3),
        clip(percent=22),
        10.0,
        (False, None, 5.0, None, 20),
        id="progress-after-stalls-polls-every-interval-again",
    ),
    pytest.param(
        state(stalls=20), UPLOADING_20, 10.0, (False, None, 60.0, None, 20), id="stalls-capped"
    ),
    pytest.param(
        FOLLOWED,
        Rejected("No clip found"),
        10.0,
        (True, None, 7.5, "Rhombus answered: No clip found; retrying", 20),
        id="first-rejection-is-a-notice",
    ),
    pytest.param(
        state(rejections=1, failures=1, notice="Rhombus answered: No clip found; retrying"),
        Rejected("No clip found"),
        10.0,
        (False, None, 15.0, "Rhombus answered: No clip found; retrying", 20),
        id="second-rejection-changes-nothing-shown",
    ),
    pytest.param(
        state(rejections=2, failures=2),
        Rejected("No clip found"),
        10.0,
        (True, Ending.NOT_FOUND, 30.0, "No clip found", 20),
        id="third-rejection-ends",
    ),
    pytest.param(
        FOLLOWED,
        Unreachable("timed out"),
        10.0,
        (True, None, 7.5, UNREACHABLE_NOTICE, 20),
        id="unreachable-is-a-notice",
    ),
    pytest.param(
        state(notice=UNREACHABLE_NOTICE, failures=1),
        Unreachable("timed out"),
        10.0,
        (False, None, 15.0, UNREACHABLE_NOTICE, 20),
        id="still-unreachable-changes-nothing-shown",
    ),
    pytest.param(
        state(failures=10),
        Unreachable("timed out"),
        10.0,
        (True, None, 225.0, UNREACHABLE_NOTICE, 20),
        id="failures-back-off-to-five-minutes",
    ),
    pytest.param(
        FOLLOWED,
        Unreachable("rate limited", retry_after=40.0),
        10.0,
        (True, None, 40.0, UNREACHABLE_NOTICE, 20),
        id="retry-after-wins",
    ),
    pytest.param(
        state(reached_at=100.0),
        Unreachable("timed out"),
        1900.5,
        (True, Ending.UNREACHABLE, 7.5, UNREACHABLE_NOTICE, 20),
        id="unreachable-for-too-long-ends",
    ),
]


@pytest.mark.parametrize(("before", "answer", "now", "expected"), CASES)
def test_what_an_answer_means(
    before: Progress, answer: Answer, now: float, expected: tuple[object, ...]
) -> None:
    """Each answer's meaning: edit or not, the ending, the next poll, the notice, the bar."""
    verdict = judge(before, answer, now=now, pacing=PACING, draw=DRAW)
    after = verdict.progress
    actual = (verdict.changed, verdict.ending, verdict.delay, after.notice, after.shown_percent)
    assert expected == actual


def test_an_answer_is_remembered_as_seen_even_without_an_edit() -> None:
    """A move within one tenth is not shown, but counts as progress and is the next baseline."""
    verdict = judge(FOLLOWED, clip(percent=27), now=10.0, pacing=PACING, draw=DRAW)
    after = verdict.progress
    assert (UPLOADING_20, 20, 0.0) == (after.shown, after.shown_percent, after.changed_at)
    assert (27, 10.0, 10.0, 0) == (
        after.seen_percent,
        after.progress_at,
        after.reached_at,
        after.stalls,
    )


def test_an_edit_records_when_the_message_changed() -> None:
    """What the message shows next, and since when, come with a changing answer."""
    answer = clip(percent=40)
    after = judge(state(stale=True), answer, now=42.0, pacing=PACING, draw=DRAW).progress
    assert (answer, 40, 42.0) == (after.shown, after.shown_percent, after.changed_at)


def test_counters_reset_on_an_answer() -> None:
    """Failures, rejections and the notice are forgotten once Rhombus answers again."""
    before = state(failures=4, rejections=2, notice=UNREACHABLE_NOTICE)
    after = judge(before, UPLOADING_20, now=10.0, pacing=PACING, draw=DRAW).progress
    assert (0, 0, None) == (after.failures, after.rejections, after.notice)


@pytest.mark.parametrize(
    ("attempt", "draw", "expected"),
    [(1, 0.0, 1.0), (1, 0.999, 1.999), (3, 0.0, 4.0), (6, 1.0, 60.0), (10_000, 0.0, 30.0)],
)
def test_backoff_grows_caps_and_spreads(attempt: int, draw: float, expected: float) -> None:
    """Delays double from the base, stop at the cap, and are spread between half and whole."""
    assert expected == pytest.approx(Backoff(1.0, 2.0, 60.0).delay(attempt, draw))


@pytest.mark.parametrize(
    ("answer", "made_at", "now", "expected"),
    [
        (Rejected("Clip not found"), 100.0, 110.0, True),
        (Rejected("Clip not found"), 100.0, 100.0 + 61, False),
        (Rejected("Clip not found"), None, 110.0, False),
        (Unreachable("down"), 100.0, 110.0, False),
        (Rejected("Clip not found"), 100.0, 90.0, False),  # a clock that went back
    ],
)
def test_a_just_made_clip_rhombus_does_not_know_is_starting(
    answer: Answer, made_at: float | None, now: float, *, expected: bool
) -> None:
    """Only refusals, of a clip made from Slack, within a minute of the splice, are waited out."""
    assert expected == still_starting(answer, made_at=made_at, now=now)


@pytest.mark.parametrize(
    ("answer", "retried_at", "now", "expected"),
    [
        (Clip(status=ClipStatus.FAILED), 100.0, 110.0, True),
        (Clip(status=ClipStatus.FAILED), 100.0, 161.0, False),
        (Clip(status=ClipStatus.FAILED), None, 110.0, False),
        (Clip(status=ClipStatus.UPLOADING), 100.0, 110.0, False),
    ],
)
def test_a_retried_clip_still_failed_is_starting(
    answer: Clip, retried_at: float | None, now: float, *, expected: bool
) -> None:
    """FAILED within a minute of pressing Retry is Rhombus catching up, not a second failure."""
    assert expected == still_starting(answer, made_at=0.0, now=now, retried_at=retried_at)
