"""What a person asks a clip to be made of, checked: from words, a form or a camera unfurl.

`/clip new`'s words or its modal's fields, or the moment of a camera unfurl's **Follow a clip of
this**. Pure: the cameras, the organisation's longest clip, the present and the person's time zone
are inputs. The text form raises `WrongInput` naming the wrong part; the modal gets an error per
field.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from bot.cameras import Camera, describe_miss, find_camera
from bot.making_views import CAMERA_BLOCK, DURATION_BLOCK, TIME_BLOCK
from bot.when import (
    EARLIEST,
    Range,
    WrongInput,
    check_past,
    local_label,
    parse_duration,
    parse_start,
    start_words,
)

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import tzinfo

    from bot.making_views import ModalValues

EXAMPLE = '`/clip new "Loading Dock North" -10m 2m Forklift near door 3`'
TITLE_LIMIT = 200
# Follow a clip of this: a minute around the moment.
AROUND_SEC = 60
DESCRIPTION_LIMIT = 1000
# Slack's modal errors are short lines under a field.
_FIELD_ERROR_LIMIT = 150
_QUOTES = {'"': '"', "\u201c": "\u201d", "\u201e": "\u201c"}


@dataclass(frozen=True)
class Order:
    """A checked request for a clip."""

    camera: Camera
    range: Range
    title: str
    description: str
    audio: bool


@dataclass(frozen=True)
class Known:
    """What checking an order needs to know besides what was typed."""

    cameras: Sequence[Camera]
    max_duration: int
    now: datetime
    zone: tzinfo


def order_from_text(text: str, known: Known) -> Order:
    """`<camera> <start> <duration> [title…]`, the camera one word or in double quotes."""
    typed_camera, rest = split_camera(text)
    words = rest.split()
    if not words:
        raise WrongInput("start", "Say when the clip starts, after the camera.")
    count = start_words(words)
    start = parse_start(" ".join(words[:count]), now=known.now, zone=known.zone)
    if len(words) <= count:
        raise WrongInput("duration", "Say how long the clip lasts, after its start.")
    duration = parse_duration(words[count], max_sec=known.max_duration)
    wanted = Range(start, duration)
    check_past(wanted, now=known.now)
    found = find_camera(known.cameras, typed_camera)
    if not isinstance(found, Camera):
        raise WrongInput("camera", describe_miss(typed_camera, found))
    title = " ".join(words[count + 1 :]) or _default_title(found, wanted, known)
    return Order(found, wanted, title[:TITLE_LIMIT], "", audio=found.has_audio)


def order_from_modal(values: ModalValues, known: Known) -> Order | dict[str, str]:
    """The modal's fields as an order, or an error message per block id."""
    errors: dict[str, str] = {}
    camera = next((c for c in known.cameras if c.uuid == values.camera_id), None)
    if camera is None:
        errors[CAMERA_BLOCK] = "Pick a camera from the list."
    start = duration = None
    try:
        start = parse_start(f"{values.date} {values.time}", now=known.now, zone=known.zone)
    except WrongInput:
        errors[TIME_BLOCK] = "Pick a date and a time of day."
    try:
        duration = parse_duration(values.duration or "", max_sec=known.max_duration)
    except WrongInput as wrong:
        errors[DURATION_BLOCK] = _field_error(wrong)
    if start is not None and duration is not None:
        try:
            check_past(Range(start, duration), now=known.now)
        except WrongInput as wrong:
            errors[TIME_BLOCK] = _field_error(wrong)
    if errors or camera is None or start is None or duration is None:
        return errors
    wanted = Range(start, duration)
    return Order(
        camera,
        wanted,
        (values.title or _default_title(camera, wanted, known))[:TITLE_LIMIT],
        (values.description or "")[:DESCRIPTION_LIMIT],
        audio=values.audio and camera.has_audio,
    )


def split_camera(text: str) -> tuple[str, str]:
    """The camera (one word, or quoted) and the rest of the text."""
    text = text.strip()
    closing = _QUOTES.get(text[:1])
    if closing is not None:
        end = text.find(closing, 1)
        if end <= 1:
            raise WrongInput(
                "camera", 'The camera\'s name has no closing quote: `"Loading Dock North"`.'
            )
        return text[1:end], text[end + 1 :]
    camera, _, rest = text.partition(" ")
    return camera, rest


def _default_title(camera: Camera, wanted: Range, known: Known) -> str:
    return f"{camera.name} {local_label(wanted.start, known.zone)}"


def _field_error(wrong: WrongInput) -> str:
    # Plain text under the field: no mrkdwn code quotes, no entities.
    text = (
        str(wrong).replace("`", "").replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    )
    return text[:_FIELD_ERROR_LIMIT]


def order_around(camera_id: str, at_ms: int, known: Known) -> Order:
    """A minute around a moment (from 30 s before), moved back to end by now; the longest clip.

    The camera must be one a clip can be made from; the moment must have happened.
    """
    camera = next((c for c in known.cameras if c.uuid == camera_id), None)
    if camera is None:
        raise WrongInput("camera", "This camera is archived or gone: no clip can be made from it.")
    duration = min(AROUND_SEC, known.max_duration)
    moment = datetime.fromtimestamp(at_ms / 1000, UTC)
    if moment > known.now:
        raise WrongInput("start", "That moment has not happened yet, so there is no footage.")
    start = min(moment - timedelta(seconds=duration / 2), known.now - timedelta(seconds=duration))
    if start < EARLIEST:
        raise WrongInput("start", "That moment is before Rhombus kept any footage.")
    wanted = Range(start, duration)
    check_past(wanted, now=known.now)
    return Order(camera, wanted, _default_title(camera, wanted, known), "", camera.has_audio)
