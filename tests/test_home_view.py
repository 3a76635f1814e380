"""The App Home, its modal and the list lines as Block Kit JSON, checked with slack_sdk's models."""

from __future__ import annotations

from slack_sdk.models.views import View

from bot.clips import Clip, Ending
from bot.home_view import HomeState, render_follow_modal, render_home
from bot.overview import Listed, channel_list, status_phrase
from bot.store import Tracking

CLIP_ID = "LobbyClip0123456789abc"


def tracking(clip_id: str = CLIP_ID, title: str = "Lobby <!channel>", **fields: object) -> Tracking:
    """A stored tracking of a clip uploading at 40 %."""
    row = Tracking.posting(
        team_id="T1",
        channel_id="C1",
        thread_ts=None,
        clip_id=clip_id,
        requester_id="U1",
        clip={"uuid": clip_id, "title": title, "status": "UPLOADING", "percentComplete": 40},
        percent=40,
        now=1_000.0,
    )
    for name, value in fields.items():
        setattr(row, name, value)
    return row


def recent(number: int) -> Clip:
    """A recent organisation-wide clip, rendering."""
    return Clip.model_validate(
        {
            "uuid": f"Recent{number:02d}_0123456789ab",
            "title": f"Recent {number}",
            "status": "RENDERING",
            "percentComplete": 10,
            "timestampMs": 1_764_000_000_000,
            "deviceUuids": ["CamFront0123456789abcd.v0"],
            "accessSettings": {"visibility": "ORG_WIDE"},
        }
    )


def test_an_empty_home_renders_as_expected():
    """Nothing followed, nothing recent: exact blocks."""
    expected = {
        "type": "home",
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": "Clips you follow"}},
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": "You follow no clip. "
                    "Type `/clip &lt;clip id or link&gt;` in a channel, "
                    "or pick one of the recent clips below.",
                },
            },
            {"type": "divider"},
            {"type": "header", "text": {"type": "plain_text", "text": "Recent clips in Rhombus"}},
            {
                "type": "section",
                "text": {
                    "type": "plain_text",
                    "text": "No clip was saved in Rhombus in the last 7 days.",
                },
            },
        ],
    }

    assert expected == render_home(HomeState())


def test_a_full_home_stays_within_100_blocks_and_validates():
    """Many clips followed and three pages of recent clips: at most 100 valid blocks."""
    live = [Listed(tracking(f"Live{n:02d}_0123456789abcd")) for n in range(40)]
    done = [
        Listed(tracking(f"Done{n:02d}_0123456789abcd", ending=Ending.COMPLETE)) for n in range(40)
    ]
    state = HomeState(live=live, finished=done, recent=[recent(n) for n in range(30)])

    view = render_home(state)

    assert len(view["blocks"]) <= 100
    assert view == View(**view).to_dict()
    View(**view).validate_json()
    text = str(view)
    assert "…and 25 more live clips." in text
    assert "…and 30 more finished clips." in text
    assert "Older clips are in Rhombus" in text


def test_outside_text_is_inert_in_the_lines():
    """A title with a broadcast in it is escaped; the line links to the status message."""
    line = channel_list([Listed(tracking(), "https://x.slack.com/archives/C1/p1")], 0)

    assert (
        "• <https://x.slack.com/archives/C1/p1|Lobby &lt;!channel&gt;> · ⬆️ Uploading 40% "
        "· asked by <@U1>"
    ) in line


def test_status_phrases():
    """Each state in a few words."""
    uploading = Clip.model_validate({"status": "UPLOADING", "percentComplete": 140})

    assert "⬆️ Uploading 100%" == status_phrase(uploading, None)
    assert "⏹️ Stopped" == status_phrase(uploading, Ending.STOPPED)
    assert "🔎 Looking it up" == status_phrase(None, None)
    assert "✅ Ready" == status_phrase(Clip.model_validate({"status": "COMPLETE"}), None)


def test_the_follow_modal_validates():
    """The modal has a channel picker, a submit button and the clip in its metadata."""
    modal = render_follow_modal(CLIP_ID, recent(1))

    View(**modal).validate_json()
    assert CLIP_ID == modal["private_metadata"]
    assert "conversations_select" == modal["blocks"][1]["element"]["type"]
