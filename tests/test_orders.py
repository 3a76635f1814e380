"""A clip around a moment (**Follow a clip of this**), checked against the present and limits."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot.cameras import Camera
from bot.orders import Known, order_around
from bot.when import WrongInput

CAMERA = Camera("LobbyCamera0000000000A", "Lobby", "HQ", has_audio=True)
NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


def known(max_duration: int = 3600) -> Known:
    """One camera, the longest clip, a fixed present, UTC."""
    return Known(cameras=[CAMERA], max_duration=max_duration, now=NOW, zone=UTC)


def ms(moment: datetime) -> int:
    """Epoch milliseconds."""
    return int(moment.timestamp() * 1000)


@pytest.mark.parametrize(
    ("ago", "max_duration", "start_ago", "duration"),
    [
        (timedelta(minutes=10), 3600, timedelta(minutes=10, seconds=30), 60),
        (timedelta(seconds=31), 3600, timedelta(seconds=61), 60),
        # In the last 30 s: moved back so the whole minute has happened.
        (timedelta(seconds=10), 3600, timedelta(seconds=60), 60),
        (timedelta(0), 3600, timedelta(seconds=60), 60),
        # An organisation whose longest clip is shorter than a minute.
        (timedelta(minutes=10), 20, timedelta(minutes=10, seconds=10), 20),
    ],
)
def test_a_minute_around_the_moment_wholly_in_the_past(ago, max_duration, start_ago, duration):
    """From 30 s before the moment for 60 s, moved back to end by now, within the longest clip."""
    order = order_around(CAMERA.uuid, ms(NOW - ago), known(max_duration))

    assert (ms(NOW - start_ago), duration) == (order.range.start_ms, order.range.duration_sec)
    assert (CAMERA, True, "") == (order.camera, order.audio, order.description)
    assert f"Lobby {(NOW - start_ago):%Y-%m-%d %H:%M:%S}" == order.title


@pytest.mark.parametrize(
    ("camera", "at", "said"),
    [
        ("GoneCamera000000000000", NOW - timedelta(minutes=5), "archived or gone"),
        (CAMERA.uuid, NOW + timedelta(seconds=1), "has not happened yet"),
        (CAMERA.uuid, datetime(1999, 12, 31, tzinfo=UTC), "before Rhombus kept any footage"),
    ],
)
def test_what_cannot_be_made_is_refused(camera, at, said):
    """An unknown camera, a future moment and one before any footage are refused plainly."""
    with pytest.raises(WrongInput) as refused:
        order_around(camera, ms(at), known())

    assert said in str(refused.value)
