"""Camera unfurls and their **Follow a clip of this** value, as Block Kit JSON and back."""

from __future__ import annotations

import pytest

from bot.unfurl_view import (
    ACTION_UNFURL_CLIP,
    CameraMoment,
    CameraShown,
    MomentClip,
    render_camera_unfurl,
)
from tests.test_blocks import assert_valid

CAMERA = "LobbyCamera0000000000A"
MOMENT = CameraMoment(CAMERA, 1_764_000_000_000)
CONSOLE = "https://console.rhombussystems.com"


def test_a_camera_unfurl_shows_name_location_moment_and_the_button():
    """Exact blocks: name and location, the date token, then Follow and Open in Rhombus."""
    offer = MomentClip(MOMENT, "1764000000.000100")
    message = render_camera_unfurl(MOMENT, CameraShown("Lobby", "HQ"), CONSOLE, offer=offer)

    expected = [
        {
            "type": "section",
            "text": {
                "type": "mrkdwn",
                "text": "📷 *Lobby* · HQ\n"
                "<!date^1764000000^{date_short_pretty} at {time}|2025-11-24T16:00:00Z>",
            },
        },
        {
            "type": "actions",
            "elements": [
                {
                    "type": "button",
                    "action_id": ACTION_UNFURL_CLIP,
                    "text": {"type": "plain_text", "text": "Follow a clip of this"},
                    "value": f"{CAMERA} 1764000000000 1764000000.000100",
                    "style": "primary",
                },
                {
                    "type": "button",
                    "action_id": "unfurl_open",
                    "text": {"type": "plain_text", "text": "Open in Rhombus"},
                    "value": CAMERA,
                    "url": f"{CONSOLE}/devices/cameras/{CAMERA}/?t=1764000000000",
                },
            ],
        },
    ]
    assert expected == message.blocks
    assert "📷 Lobby · HQ" == message.text
    assert_valid(message, users=())


def test_outside_names_are_inert_and_the_button_optional():
    """Entities in a name or location are escaped; without an offer there is no Follow button."""
    shown = CameraShown("<!channel> *Door*", "Site & <@U1>")
    message = render_camera_unfurl(MOMENT, shown, CONSOLE)

    assert "📷 *&lt;!channel&gt; *Door**" in message.blocks[0]["text"]["text"]
    assert ["unfurl_open"] == [e["action_id"] for e in message.blocks[1]["elements"]]
    assert_valid(message, users=())


def test_an_unknown_camera_is_a_rhombus_camera():
    """No name from Rhombus: "Rhombus camera", and no location."""
    message = render_camera_unfurl(MOMENT, CameraShown(), CONSOLE)

    assert "📷 Rhombus camera" == message.text


@pytest.mark.parametrize(
    "thread_ts", [None, "1764000000.000100", "1.2", "not a ts", "1764000000.000100 x", 17.5]
)
def test_the_value_reads_back_what_was_written(thread_ts):
    """A value the bot wrote reads back; a thread that is no message ts is left out."""
    offer = MomentClip.of(MOMENT, thread_ts)

    expected = thread_ts if thread_ts in {"1764000000.000100", "1.2"} else None
    assert (MomentClip(MOMENT, expected), offer) == (MomentClip.read(offer.value), offer)


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        CAMERA,
        f"{CAMERA} soon",
        f"{CAMERA} -5",
        f"{CAMERA} 0",
        f"{CAMERA} 99999999999999999999999",
        f"{CAMERA} 253402300800000",
        f"{CAMERA}  1764000000000",
        f"{CAMERA} 1764000000000 <!channel>",
        f"{CAMERA} 1764000000000 1.2 extra",
        f"../../{CAMERA} 1764000000000",
        "<!channel> 1764000000000",
        f"{CAMERA} 1764000000000 " + "1" * 5000,
        f"{CAMERA} \uff11\uff17\uff16\uff14",  # full-width digits
    ],
)
def test_values_the_bot_did_not_write_are_refused(value):
    """Garbage, entities, overflowing numbers and odd spacing read as nothing."""
    assert MomentClip.read(value) is None
