"""The `/clip new` modal: rendered from the person's time zone, and read back from a submission.

Pure: rendering reads nothing but its arguments; reading a submission returns the typed values
or, per block, what is wrong (Slack shows each under its field: `response_action: errors`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from bot.blocks import JsonBlock, plain, truncate

if TYPE_CHECKING:
    from collections.abc import Sequence

    from bot.cameras import Camera

MODAL_CALLBACK = "clip_new_modal"
CAMERA_BLOCK, CAMERA_ACTION = "camera", "camera_pick"
DATE_BLOCK, DATE_ACTION = "date", "date_pick"
TIME_BLOCK, TIME_ACTION = "time", "time_pick"
DURATION_BLOCK, DURATION_ACTION = "duration", "duration_text"
TITLE_BLOCK, TITLE_ACTION = "title", "title_text"
DESCRIPTION_BLOCK, DESCRIPTION_ACTION = "description", "description_text"
AUDIO_BLOCK, AUDIO_ACTION = "audio", "audio_pick"
AUDIO_ON = "audio"

OPTIONS_LIMIT = 100  # options an external_select shows
OPTION_TEXT_LIMIT = 75
TITLE_LIMIT = 200
DESCRIPTION_LIMIT = 1000


@dataclass(frozen=True)
class ModalContext:
    """What the modal carries between opening and submission (its private_metadata)."""

    channel_id: str
    tz: str | None  # Slack's `tz`: an IANA name
    tz_offset: int | None  # Slack's `tz_offset`, seconds east of UTC

    def dump(self) -> str:
        """As private_metadata."""
        return json.dumps({"c": self.channel_id, "z": self.tz, "o": self.tz_offset})

    @classmethod
    def load(cls, raw: object) -> ModalContext | None:
        """From private_metadata; None when it is not ours."""
        try:
            data = json.loads(raw) if isinstance(raw, str) else None
        except ValueError:
            return None
        if not isinstance(data, dict):
            return None
        channel, tz, offset = data.get("c"), data.get("z"), data.get("o")
        if not isinstance(channel, str):
            return None
        return cls(
            channel,
            tz if isinstance(tz, str) else None,
            offset if isinstance(offset, int) and not isinstance(offset, bool) else None,
        )


@dataclass(frozen=True)
class ModalValues:
    """The fields as submitted, before they are checked like the text form's words."""

    camera_id: str | None
    date: str | None
    time: str | None
    duration: str | None
    title: str | None
    description: str | None
    audio: bool


def render_modal(context: ModalContext, now_local: datetime) -> dict[str, Any]:
    """The modal: camera type-ahead, date and time in the person's zone, duration, title, audio."""
    start = now_local - timedelta(minutes=5)
    blocks: list[JsonBlock] = [
        _input(
            CAMERA_BLOCK,
            "Camera",
            {
                "type": "external_select",
                "action_id": CAMERA_ACTION,
                "placeholder": plain("Type part of a camera's name"),
                "min_query_length": 0,
            },
        ),
        _input(
            DATE_BLOCK,
            "Start date",
            {
                "type": "datepicker",
                "action_id": DATE_ACTION,
                "initial_date": start.strftime("%Y-%m-%d"),
            },
        ),
        _input(
            TIME_BLOCK,
            "Start time (your time zone)",
            {
                "type": "timepicker",
                "action_id": TIME_ACTION,
                "initial_time": start.strftime("%H:%M"),
            },
        ),
        _input(
            DURATION_BLOCK,
            "Duration",
            {
                "type": "plain_text_input",
                "action_id": DURATION_ACTION,
                "initial_value": "1m",
                "placeholder": plain("90s, 2m, 1m30s or 1h"),
            },
        ),
        _input(
            TITLE_BLOCK,
            "Title",
            {
                "type": "plain_text_input",
                "action_id": TITLE_ACTION,
                "max_length": TITLE_LIMIT,
                "placeholder": plain("Default: the camera's name and the start"),
            },
            optional=True,
        ),
        _input(
            DESCRIPTION_BLOCK,
            "Description",
            {
                "type": "plain_text_input",
                "action_id": DESCRIPTION_ACTION,
                "multiline": True,
                "max_length": DESCRIPTION_LIMIT,
            },
            optional=True,
        ),
        _input(
            AUDIO_BLOCK,
            "Audio",
            {
                "type": "checkboxes",
                "action_id": AUDIO_ACTION,
                "options": [_option("Include audio, when the camera records it", AUDIO_ON)],
            },
            optional=True,
        ),
    ]
    return {
        "type": "modal",
        "callback_id": MODAL_CALLBACK,
        "title": plain("Make a Rhombus clip"),
        "submit": plain("Make clip"),
        "close": plain("Cancel"),
        "private_metadata": context.dump(),
        "blocks": blocks,
    }


def camera_options(cameras: Sequence[Camera], typed: str) -> list[JsonBlock]:
    """Options for the camera type-ahead: labels containing what was typed, `Camera · Location`."""
    wanted = " ".join(typed.split()).casefold()
    found = [camera for camera in cameras if wanted in camera.label.casefold()]
    return [
        _option(camera.label + ("" if camera.online else " (offline)"), camera.uuid)
        for camera in found[:OPTIONS_LIMIT]
    ]


def read_values(state: object) -> ModalValues:
    """The submitted fields from `view.state.values`; anything missing or odd is None."""
    values = state if isinstance(state, dict) else {}

    def element(block: str, action: str) -> dict[str, Any]:
        found = (
            (values.get(block) or {}).get(action) if isinstance(values.get(block), dict) else None
        )
        return found if isinstance(found, dict) else {}

    def text(block: str, action: str, key: str = "value") -> str | None:
        value = element(block, action).get(key)
        return value.strip() or None if isinstance(value, str) else None

    selected = element(CAMERA_BLOCK, CAMERA_ACTION).get("selected_option")
    camera = selected.get("value") if isinstance(selected, dict) else None
    boxes = element(AUDIO_BLOCK, AUDIO_ACTION).get("selected_options")
    audio = isinstance(boxes, list) and any(
        isinstance(box, dict) and box.get("value") == AUDIO_ON for box in boxes
    )
    return ModalValues(
        camera_id=camera if isinstance(camera, str) else None,
        date=text(DATE_BLOCK, DATE_ACTION, "selected_date"),
        time=text(TIME_BLOCK, TIME_ACTION, "selected_time"),
        duration=text(DURATION_BLOCK, DURATION_ACTION),
        title=text(TITLE_BLOCK, TITLE_ACTION),
        description=text(DESCRIPTION_BLOCK, DESCRIPTION_ACTION),
        audio=audio,
    )


def _input(block_id: str, label: str, element: JsonBlock, *, optional: bool = False) -> JsonBlock:
    block: JsonBlock = {
        "type": "input",
        "block_id": block_id,
        "label": plain(label),
        "element": element,
    }
    if optional:
        block["optional"] = True
    return block


def _option(label: str, value: str) -> JsonBlock:
    return {"text": plain(truncate(label, OPTION_TEXT_LIMIT)), "value": value}
