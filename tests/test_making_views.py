"""Pure rendering for made clips: the `/clip new` modal, its options, and the status message."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from slack_sdk.models.blocks import Block
from slack_sdk.models.views import View

from bot.cameras import Camera
from bot.clips import Clip, ClipStatus, Ending
from bot.making_views import (
    AUDIO_ACTION,
    AUDIO_BLOCK,
    ModalContext,
    ModalValues,
    camera_options,
    read_values,
    render_modal,
)
from bot.orders import Known, order_from_modal
from bot.status_message import ACTION_CANCEL, ACTION_RETRY, MadeFromSlack, StatusView, render_status
from tests.helpers import assert_inert, text_objects

LOBBY = Camera("LobbyCamera0000000000A", "Lobby", "HQ", has_audio=True)
DOCK = Camera("LoadingDockCamera0000A", "Loading <Dock> & Yard", None, online=False)
MADE = MadeFromSlack("U0ALICE", "Loading <Dock>", 1_764_000_000, 90, 1_764_000_700.0)


def test_the_modal_is_valid_and_opens_in_the_persons_time():
    """Block Kit's own View model accepts the modal; date and time start five minutes back."""
    now = datetime(2026, 3, 2, 0, 3, tzinfo=ZoneInfo("Pacific/Auckland"))
    modal = render_modal(ModalContext("C0GENERAL", "Pacific/Auckland", 46800), now)

    View(**modal).validate_json()
    assert ["camera", "date", "time", "duration", "title", "description", "audio"] == [
        block["block_id"] for block in modal["blocks"]
    ]
    assert ("2026-03-01", "23:58") == (
        modal["blocks"][1]["element"]["initial_date"],
        modal["blocks"][2]["element"]["initial_time"],
    )
    assert ModalContext("C0GENERAL", "Pacific/Auckland", 46800) == ModalContext.load(
        modal["private_metadata"]
    )


@pytest.mark.parametrize(
    "raw", [None, "", "[]", "{}", '{"c": 5}', "not json", '{"c": "C1", "o": true}']
)
def test_private_metadata_that_is_not_ours_is_ignored_or_read_safely(raw):
    """Anything but the bot's own metadata is None; odd fields are dropped."""
    loaded = ModalContext.load(raw)
    assert loaded is None or (loaded.channel_id, loaded.tz, loaded.tz_offset) == ("C1", None, None)


def test_camera_options_are_labelled_and_filtered():
    """Options read `Camera · Location`, mark offline cameras, and match any part of a label."""
    assert [("plain_text", "Lobby · HQ", LOBBY.uuid)] == [
        (option["text"]["type"], option["text"]["text"], option["value"])
        for option in camera_options([LOBBY, DOCK], "hq")
    ]
    assert ["Loading <Dock> & Yard (offline)"] == [
        option["text"]["text"] for option in camera_options([LOBBY, DOCK], "DOCK")
    ]
    assert 100 == len(camera_options([LOBBY] * 150, ""))


@pytest.mark.parametrize(
    "state", [None, [], {"camera": "x"}, {"audio": {AUDIO_ACTION: {"selected_options": "x"}}}]
)
def test_garbage_modal_state_reads_as_empty(state):
    """A submission with missing or odd values reads as nothing chosen."""
    assert ModalValues(None, None, None, None, None, None, audio=False) == read_values(state)


def test_the_modal_is_checked_like_the_command():
    """A valid submission is an order; audio only for a camera that records it."""
    known = Known(
        [LOBBY, DOCK], 3600, datetime(2026, 3, 1, 12, 0, tzinfo=ZoneInfo("UTC")), ZoneInfo("UTC")
    )
    ticked = {"selected_options": [{"value": "audio"}]}
    values = ModalValues(DOCK.uuid, "2026-03-01", "11:00", "2m", None, "why", audio=True)
    order = order_from_modal(values, known)
    assert not isinstance(order, dict)
    assert (DOCK, 120, "Loading <Dock> & Yard 2026-03-01 11:00:00", False) == (
        order.camera,
        order.range.duration_sec,
        order.title,
        order.audio,
    )
    assert read_values({AUDIO_BLOCK: {AUDIO_ACTION: ticked}}).audio


def status(clip: Clip | None, **changes: object) -> StatusView:
    """A made clip's status view."""
    fields: dict[str, object] = {
        "clip_id": "MadeClip00000000000000",
        "clip": clip,
        "requester": "U0ALICE",
        "started_at": 1_764_000_700,
        "changed_at": 1_764_000_700,
        "made": MADE,
    }
    return StatusView(**(fields | changes))  # type: ignore[arg-type]


def action_ids(view: StatusView) -> list[str]:
    """The buttons the message offers."""
    message = render_status(view)
    return [e["action_id"] for b in message.blocks if b["type"] == "actions" for e in b["elements"]]


def test_a_made_clip_says_so_and_offers_cancel_then_retry():
    """While made: Cancel with a confirm dialog; FAILED: Retry; Cancelled says by whom."""
    making = Clip(status=ClipStatus.UPLOADING, percent_complete=40)
    failed = Clip(status=ClipStatus.FAILED, current_operation="Render failed")
    ready = Clip(status=ClipStatus.COMPLETE)

    assert ACTION_CANCEL in action_ids(status(making))
    assert ACTION_RETRY not in action_ids(status(making))
    assert [ACTION_RETRY] == [
        a for a in action_ids(status(failed, ending=Ending.FAILED)) if a == ACTION_RETRY
    ]
    assert {ACTION_CANCEL, ACTION_RETRY}.isdisjoint(
        action_ids(status(ready, ending=Ending.COMPLETE))
    )
    cancelled = render_status(status(making, ending=Ending.CANCELLED, stopped_by="U0BOB"))
    assert "🚫 Cancelled by <@U0BOB>" in text_objects(cancelled.blocks, "mrkdwn")
    assert "Cancelled" in cancelled.text


def test_the_made_line_and_footage_gaps_are_valid_and_inert():
    """Who made it, the camera (escaped), the range and the gaps; every block passes slack_sdk."""
    gaps = MadeFromSlack(
        "U0ALICE", "Loading <Dock>", 1_764_000_000, 90, 0.0, ((1_764_000_000, 1_764_000_030),)
    )
    message = render_status(status(Clip(status=ClipStatus.INITIATING), made=gaps))
    for block in message.blocks:
        Block.parse(block).validate_json()  # type: ignore[union-attr]
    made = [t for t in text_objects(message.blocks, "mrkdwn") if "Made from Slack" in t]
    assert 1 == len(made)
    assert "Loading &lt;Dock&gt;" in made[0]
    assert "for 1 min 30 s" in made[0]
    assert any(
        "No recorded footage" in t and "for 30 s" in t
        for t in text_objects(message.blocks, "mrkdwn")
    )
    for text in text_objects(message.blocks, "mrkdwn"):
        assert_inert(text, {"U0ALICE"})
