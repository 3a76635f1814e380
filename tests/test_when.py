"""Reading a clip's start and duration: every form, time zones far from UTC, and refusals."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.cameras import (
    Ambiguous,
    CameraLocation,
    CameraState,
    NoMatch,
    TimeWindow,
    cameras_of,
    find_camera,
    footage,
)
from bot.orders import Known, order_from_text
from bot.when import (
    Range,
    WrongInput,
    check_past,
    parse_duration,
    parse_start,
    start_words,
    zone_of,
)

NOW = datetime(2026, 3, 1, 11, 10, 0, tzinfo=UTC)  # 00:10 the next day in Auckland (UTC+13)
AUCKLAND = ZoneInfo("Pacific/Auckland")
HONOLULU = ZoneInfo("Pacific/Honolulu")  # UTC-10


@pytest.mark.parametrize(
    ("typed", "zone", "expected"),
    [
        ("-10m", UTC, NOW - timedelta(minutes=10)),
        ("10m ago", UTC, NOW - timedelta(minutes=10)),
        ("-1h30m", UTC, NOW - timedelta(minutes=90)),
        ("90s ago", AUCKLAND, NOW - timedelta(seconds=90)),
        # 23:50 typed at 00:10 local time means yesterday evening.
        ("23:50", AUCKLAND, datetime(2026, 3, 1, 10, 50, tzinfo=UTC)),
        # Just after midnight, local: today.
        ("00:05", AUCKLAND, datetime(2026, 3, 1, 11, 5, tzinfo=UTC)),
        ("00:05:30", AUCKLAND, datetime(2026, 3, 1, 11, 5, 30, tzinfo=UTC)),
        ("01:00", HONOLULU, datetime(2026, 3, 1, 11, 0, tzinfo=UTC)),
        ("01:11", HONOLULU, datetime(2026, 2, 28, 11, 11, tzinfo=UTC)),
        ("2026-03-02 00:01", AUCKLAND, datetime(2026, 3, 1, 11, 1, tzinfo=UTC)),
        ("2026-02-28 09:00:15", HONOLULU, datetime(2026, 2, 28, 19, 0, 15, tzinfo=UTC)),
        ("2026-03-01T10:00:00Z", AUCKLAND, datetime(2026, 3, 1, 10, 0, tzinfo=UTC)),
        ("2026-03-01T12:00:00+02:00", UTC, datetime(2026, 3, 1, 10, 0, tzinfo=UTC)),
    ],
)
def test_each_start_form(typed, zone, expected):
    """Relative, clock time (the most recent past one), local date and time, ISO with a zone."""
    assert expected == parse_start(typed, now=NOW, zone=zone)


@pytest.mark.parametrize(
    ("typed", "part"),
    [
        ("soon", "start"),
        ("25:00", "start"),
        ("2026-02-30 10:00", "start"),
        ("2026-03-01T10:00:00", "start"),  # ISO without a zone is ambiguous
        ("-", "start"),
        ("ago ago", "start"),
    ],
)
def test_unreadable_starts_are_refused(typed, part):
    """A start that is none of the forms names the start, with examples."""
    with pytest.raises(WrongInput) as refused:
        parse_start(typed, now=NOW, zone=UTC)
    assert part == refused.value.part
    assert "`" in str(refused.value)


@pytest.mark.parametrize(
    ("typed", "expected"),
    [("90s", 90), ("2m", 120), ("1h", 3600), ("1m30s", 90), ("45", 45)],
)
def test_durations(typed, expected):
    """Every duration form in seconds."""
    assert expected == parse_duration(typed, max_sec=3600)


@pytest.mark.parametrize(
    ("typed", "said"),
    [("0", "at least 1 second"), ("2h", "at most 1 h"), ("-5m", "not one I can read"), ("x", "")],
)
def test_bad_durations(typed, said):
    """Zero, too long, negative and garbage durations are refused naming the duration."""
    with pytest.raises(WrongInput) as refused:
        parse_duration(typed, max_sec=3600)
    assert "duration" == refused.value.part
    assert said in str(refused.value)


def test_a_range_that_ends_in_the_future_is_refused():
    """The whole clip must be in the past."""
    with pytest.raises(WrongInput, match="in the past"):
        check_past(Range(NOW - timedelta(seconds=30), 60), now=NOW)
    check_past(Range(NOW - timedelta(seconds=60), 60), now=NOW)


def test_start_words():
    """`10m ago` and a date with a time take two words, anything else one."""
    assert [2, 2, 1, 1] == [
        start_words(words.split())
        for words in ("10m ago 2m", "2026-03-01 10:00 2m", "-10m 2m", "10:00 2m")
    ]


def test_zone_of_falls_back_to_the_offset_then_utc():
    """A Slack tz name wins; an unknown name uses tz_offset; nothing at all is UTC."""
    assert AUCKLAND == zone_of("Pacific/Auckland", 0)
    assert timezone(timedelta(hours=-5)) == zone_of("Nowhere/Else", -18000)
    assert UTC == zone_of(None, "garbage")


CAMERAS = cameras_of(
    [
        CameraState(
            uuid="LoadingDockNorth00000A", name="Loading Dock North", supported_facets=["v0", "a0"]
        ),
        CameraState(
            uuid="LoadingDockSouth00000A", name="Loading Dock South", connection_status="RED"
        ),
        CameraState(uuid="LobbyCamera0000000000A", name="Lobby"),
        CameraState(uuid="OldCamera000000000000A", name="Old Lobby", mummified=True),
        CameraState(uuid="not-a-uuid", name="Broken"),
        CameraState(uuid="NamelessCamera0000000A", name=None),
    ],
    {"LobbyCamera0000000000A": CameraLocation(camera_name="Lobby", location_name="HQ")},
)


def test_camera_list_leaves_out_archived_nameless_and_broken_cameras():
    """Only usable cameras, labelled with their location when known."""
    assert ["Loading Dock North", "Loading Dock South", "Lobby · HQ"] == [c.label for c in CAMERAS]
    assert (True, False) == (CAMERAS[0].has_audio, CAMERAS[1].online)


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("LobbyCamera0000000000A", "Lobby"),
        ("lobby", "Lobby"),
        ("loading dock north", "Loading Dock North"),
        ("south", "Loading Dock South"),
    ],
)
def test_camera_matching(typed, expected):
    """By uuid, exact name (any case), or a unique part of a name."""
    found = find_camera(CAMERAS, typed)
    assert expected == getattr(found, "name", None)


def test_ambiguous_and_missing_cameras():
    """Several matches list candidates; none suggests the closest names."""
    assert 2 == len(find_camera(CAMERAS, "dock").candidates)  # type: ignore[union-attr]
    assert isinstance(find_camera(CAMERAS, "dock"), Ambiguous)
    missed = find_camera(CAMERAS, "Lobbby")
    assert isinstance(missed, NoMatch)
    assert ["Lobby"] == missed.closest[:1]


@pytest.mark.parametrize(
    ("windows", "missing"),
    [
        ([(0, 100)], []),
        ([], [(10, 70)]),
        ([(0, 30)], [(30, 70)]),
        ([(20, 10), (50, 100)], [(10, 20), (30, 50)]),
        ([(None, 5)], [(10, 70)]),
    ],
)
def test_footage(windows, missing):
    """The seconds of a range that no presence window covers."""
    found = footage([TimeWindow(start_seconds=s, duration_seconds=d) for s, d in windows], 10, 60)
    assert missing == found.missing


@settings(max_examples=300, deadline=None)
@given(
    st.text(
        alphabet=st.sampled_from([*'0123456789:-+TZ hmsago"“”LobyDck \t<>&`.', "\u202e"]),
        max_size=40,
    )
)
def test_any_text_is_an_order_or_a_named_refusal(text):
    """Whatever is typed after `/clip new`, the answer is an order or a refusal naming a part."""
    known = Known(CAMERAS, 3600, NOW, AUCKLAND)
    try:
        order = order_from_text(text, known)
    except WrongInput as wrong:
        refused = wrong
    else:
        assert 1 <= order.range.duration_sec <= 3600
        assert order.range.end <= NOW
        return
    assert refused.part in {"camera", "start", "duration"}
    assert str(refused)
