"""When a clip to make starts and how long it lasts, read from what a person typed.

Pure: the present moment and the person's time zone are inputs, so every form is tested with
tables. Every refusal is a `WrongInput` naming the part that is wrong, with an example.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bot.clips import quote_for_reason as _quote

# Rhombus's own cap when the organisation states none (getMaxSpliceDuration's example).
DEFAULT_MAX_DURATION_SEC = 3600
# No camera recorded before this: earlier starts are typing mistakes.
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)

START_EXAMPLES = "`-10m`, `10m ago`, `14:05`, `2026-03-01 14:05` or `2026-03-01T14:05:00Z`"
DURATION_EXAMPLES = "`90s`, `2m`, `1m30s`, `1h` or `45`"

_RELATIVE = re.compile(r"-?(?:(?P<h>\d{1,4})h)?(?:(?P<m>\d{1,6})m)?(?:(?P<s>\d{1,7})s)?")
_DURATION = _RELATIVE
_CLOCK = re.compile(r"(?P<h>\d{1,2}):(?P<m>\d{2})(?::(?P<s>\d{2}))?")
_DATE = re.compile(r"(?P<y>\d{4})-(?P<mo>\d{2})-(?P<d>\d{2})")
_ISO_WITH_ZONE = re.compile(
    r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:?\d{2})"
)


class WrongInput(ValueError):  # noqa: N818  # a person's mistake, not a failure of the bot
    """What a person typed cannot be used; the message says which part and shows an example."""

    def __init__(self, part: str, message: str) -> None:
        super().__init__(message)
        self.part = part


@dataclass(frozen=True)
class Range:
    """A stretch of recorded time: its start (UTC) and length in whole seconds."""

    start: datetime
    duration_sec: int

    @property
    def start_ms(self) -> int:
        """The start as epoch milliseconds."""
        return int(self.start.timestamp() * 1000)

    @property
    def end(self) -> datetime:
        """When the range ends."""
        return self.start + timedelta(seconds=self.duration_sec)


def zone_of(tz_name: object, tz_offset: object = None) -> tzinfo:
    """A person's time zone from Slack's `users.info` (`tz`, else `tz_offset`); UTC if neither."""
    if isinstance(tz_name, str) and tz_name:
        try:
            return ZoneInfo(tz_name)
        except (ZoneInfoNotFoundError, ValueError):
            pass
    if isinstance(tz_offset, int) and not isinstance(tz_offset, bool) and abs(tz_offset) < 86400:
        return timezone(timedelta(seconds=tz_offset))
    return UTC


def start_words(words: list[str]) -> int:
    """How many of the leading words make up the start: 2 for `10m ago` and `<date> <time>`."""
    if len(words) >= 2 and (
        words[1].lower() == "ago" or (_DATE.fullmatch(words[0]) and _CLOCK.fullmatch(words[1]))
    ):
        return 2
    return 1


def parse_start(text: str, *, now: datetime, zone: tzinfo) -> datetime:
    """The moment `text` names, in UTC; `now` is aware; clock times are in `zone`."""
    try:
        start = _start(text.split(), now=now, zone=zone)
    except (OverflowError, ValueError) as error:
        if isinstance(error, WrongInput):
            raise
        raise _bad_start(text) from None
    if start < EARLIEST:
        raise WrongInput("start", f"The start {_quote(text)} is before Rhombus kept any footage.")
    return start


def _start(words: list[str], *, now: datetime, zone: tzinfo) -> datetime:
    text = " ".join(words)
    if len(words) == 2 and words[1].lower() == "ago":
        return now - timedelta(seconds=_relative(words[0], "start"))
    if len(words) == 1 and words[0].startswith("-"):
        return now - timedelta(seconds=_relative(words[0], "start"))
    if len(words) == 1 and (clock := _CLOCK.fullmatch(words[0])):
        return _most_recent(_clock_time(clock), now=now, zone=zone)
    if (
        len(words) == 2
        and (day := _DATE.fullmatch(words[0]))
        and (clock := _CLOCK.fullmatch(words[1]))
    ):
        return _local(_date(day), _clock_time(clock), zone)
    if len(words) == 1 and _ISO_WITH_ZONE.fullmatch(words[0]):
        return datetime.fromisoformat(words[0]).astimezone(UTC)
    raise _bad_start(text)


def parse_duration(text: str, *, max_sec: int) -> int:
    """Whole seconds from `90s`, `2m`, `1m30s`, `1h` or a bare number; 1 s to `max_sec`."""
    word = text.strip()
    if word.isdigit():
        seconds = int(word[:9])
    elif (
        word
        and not word.startswith("-")
        and (match := _DURATION.fullmatch(word))
        and any(match.groups())
    ):
        seconds = _seconds(match)
    else:
        raise WrongInput(
            "duration",
            f"The duration {_quote(text)} is not one I can read: use {DURATION_EXAMPLES}.",
        )
    if seconds < 1:
        raise WrongInput("duration", "The duration must be at least 1 second, e.g. `30s`.")
    if seconds > max_sec:
        raise WrongInput(
            "duration",
            f"The duration is at most {describe_seconds(max_sec)} in this organisation; "
            f"e.g. `{max_sec // 60 or 1}m`.",
        )
    return seconds


def check_past(wanted: Range, *, now: datetime) -> None:
    """Refuse a range that has not wholly happened yet."""
    if wanted.end > now:
        raise WrongInput(
            "start",
            "The whole clip must be in the past: it would end "
            f"{describe_seconds(int((wanted.end - now).total_seconds()) or 1)} from now. "
            "Start earlier or make it shorter, e.g. `-10m 2m`.",
        )


def describe_seconds(seconds: int) -> str:
    """`1 h 2 min 3 s`."""
    hours, rest = divmod(max(0, seconds), 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{n} {unit}" for n, unit in ((hours, "h"), (minutes, "min"), (secs, "s")) if n]
    return " ".join(parts) or "0 s"


def local_label(moment: datetime, zone: tzinfo) -> str:
    """`2026-03-01 14:05:00` in the zone: for default titles and messages."""
    return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S")


# --- Pieces ---------------------------------------------------------------------------------------


def _relative(word: str, part: str) -> int:
    match = _RELATIVE.fullmatch(word)
    if match is None or not any(match.groups()):
        raise _bad_start(word) if part == "start" else WrongInput(part, word)
    return _seconds(match)


def _seconds(match: re.Match[str]) -> int:
    return int(match["h"] or 0) * 3600 + int(match["m"] or 0) * 60 + int(match["s"] or 0)


def _clock_time(match: re.Match[str]) -> time:
    hours, minutes, seconds = int(match["h"]), int(match["m"]), int(match["s"] or 0)
    if hours > 23 or minutes > 59 or seconds > 59:
        raise WrongInput(
            "start", f"{_quote(match[0])} is not a time of day: use `HH:MM`, e.g. `14:05`."
        )
    return time(hours, minutes, seconds)


def _date(match: re.Match[str]) -> date:
    try:
        return date(int(match["y"]), int(match["mo"]), int(match["d"]))
    except ValueError:
        raise WrongInput(
            "start", f"{_quote(match[0])} is not a date: use `YYYY-MM-DD`, e.g. `2026-03-01`."
        ) from None


def _local(day: date, clock: time, zone: tzinfo) -> datetime:
    return datetime.combine(day, clock, tzinfo=zone).astimezone(UTC)


def _most_recent(clock: time, *, now: datetime, zone: tzinfo) -> datetime:
    """The latest moment not after `now` whose local time in `zone` is `clock`."""
    today = now.astimezone(zone).date()
    for back in range(3):
        candidate = _local(today - timedelta(days=back), clock, zone)
        if candidate <= now:
            return candidate
    return _local(today - timedelta(days=3), clock, zone)


def _bad_start(text: str) -> WrongInput:
    return WrongInput(
        "start", f"The start {_quote(text)} is not one I can read: use {START_EXAMPLES}."
    )
