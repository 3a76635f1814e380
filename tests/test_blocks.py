"""Tests for rendering a followed clip as a Slack message."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from slack_sdk.models.blocks import Block

from bot.blocks import (
    HEADER_TEXT_LIMIT,
    MESSAGE_BLOCKS_LIMIT,
    MESSAGE_TEXT_LIMIT,
    RenderedMessage,
    escape_mrkdwn,
    truncate,
)
from bot.clips import Clip, ClipStatus, Ending
from bot.status_message import (
    ACTION_OPEN,
    ACTION_REFRESH,
    ACTION_STOP,
    StatusView,
    clip_link,
    render_final_reply,
    render_status,
)
from tests.helpers import ESCAPE, OWN_ENTITY, assert_inert, text_objects

if TYPE_CHECKING:
    from collections.abc import Collection

EXPECTED = Path(__file__).parent / "expected"
CLIP_ID = "AbCdEfGhIjKlMnOpQrStUv"
LOBBY = "Xq3vB8kLm2NpR5tYw9ZaCd"
FRONT_DESK = "Hs7Kd2Lq9Wm4Pn6Rt1Vb8Y"
REQUESTER = "U123ABC"
STARTED_AT = 1732803600
CHANGED_AT = 1732803660

RENDERING_CLIP: dict[str, Any] = {
    "uuid": CLIP_ID,
    "title": "Lobby door",
    "description": "Parcel delivery at the front desk",
    "status": "RENDERING",
    "percentComplete": 45,
    "currentOperation": "Processing video",
    "createdAtMs": 1732803590000,
    "timestampMs": 1732803300000,
    "durationSec": 150,
    "deviceUuids": [f"{LOBBY}.v0", f"{FRONT_DESK}.v0"],
    "accessSettings": {"visibility": "ORG_WIDE"},
}
COMPLETE_CLIP: dict[str, Any] = {
    "uuid": CLIP_ID,
    "title": "Lobby door",
    "status": "COMPLETE",
    "percentComplete": 100,
    "currentOperation": "Complete",
    "timestampMs": 1732803300000,
    "durationSec": 3900,
    "deviceUuids": [f"{LOBBY}.v0"],
    "videoResolution": {"width": 1920, "height": 1080},
    "byteCount": 48_200_000,
    "accessSettings": {"visibility": "PRIVATE"},
}
CAMERAS = {LOBBY: "Lobby", FRONT_DESK: "Front desk"}

HOSTILE = [
    "<!channel>",
    "<!here>",
    "<!everyone>",
    "<@U999EVIL>",
    "<#C123|general>",
    "<!subteam^S123>",
    "<https://evil.example|click>",
    "<http://evil.example>",
    "*bold* _italic_ ~strike~ `code` > quote",
    "&lt;!channel&gt; &amp;",
    "a & b < c > d",
    "<" * 3000,
    "x" * 10_000,
    "<!channel>" * 1000,
]


def clip(data: dict[str, Any], **changes: Any) -> Clip:
    """A clip as Rhombus would send it, with some fields changed (camelCase keys)."""
    return Clip.model_validate(data | changes)


def view(clip_: Clip | None, **changes: Any) -> StatusView:
    """A status view of the clip asked for by REQUESTER."""
    fields: dict[str, Any] = {
        "clip_id": CLIP_ID,
        "clip": clip_,
        "requester": REQUESTER,
        "started_at": STARTED_AT,
        "changed_at": CHANGED_AT,
        "cameras": CAMERAS,
    }
    return StatusView(**(fields | changes))


def load_expected(name: str) -> dict[str, Any]:
    """An expected message, written by hand in tests/expected/."""
    loaded: dict[str, Any] = json.loads((EXPECTED / name).read_text(encoding="utf-8"))
    return loaded


def as_json(message: RenderedMessage) -> dict[str, Any]:
    """The message as chat.postMessage would send it."""
    return {"text": message.text, "blocks": message.blocks}


def assert_valid(message: RenderedMessage, users: Collection[str] = (REQUESTER,)) -> None:
    """The message is what Slack accepts, and no outside text in it can ping or link."""
    assert 1 <= len(message.text) <= MESSAGE_TEXT_LIMIT
    assert 1 <= len(message.blocks) <= MESSAGE_BLOCKS_LIMIT
    parsed = Block.parse_all(message.blocks)
    for model, original in zip(parsed, message.blocks, strict=True):
        model.validate_json()
        # to_dict() validates the nested elements too, and drops any key slack_sdk does not know.
        assert original == model.to_dict()
    for kind in ("mrkdwn", "plain_text", "text"):
        for text in text_objects(message.blocks, kind):
            assert 1 <= len(text) <= 3000
    for block in message.blocks:
        for field in block.get("fields", []):
            assert len(field["text"]) <= 2000
        if block["type"] == "header":
            assert len(block["text"]["text"]) <= HEADER_TEXT_LIMIT
    for text in [message.text, *text_objects(message.blocks, "mrkdwn")]:
        assert_inert(text, users)


def section_texts(message: RenderedMessage) -> list[str]:
    """The text of every section, in order."""
    return [block["text"]["text"] for block in message.blocks if "text" in block]


def action_ids(message: RenderedMessage) -> list[str]:
    """The action_id of every button, in order."""
    return [
        element["action_id"]
        for block in message.blocks
        if block["type"] == "actions"
        for element in block["elements"]
    ]


# --- Complete messages --------------------------------------------------------------------------


def test_rendering_clip_matches_expected_json() -> None:
    """A clip rendering half-way renders exactly as designed."""
    message = render_status(view(clip(RENDERING_CLIP)))

    assert load_expected("status_rendering.json") == as_json(message)
    assert_valid(message)


def test_complete_clip_matches_expected_json() -> None:
    """A completed clip shows resolution and size, and keeps only the Open button."""
    message = render_status(
        view(clip(COMPLETE_CLIP), ending=Ending.COMPLETE, changed_at=1732803900)
    )

    assert load_expected("status_complete.json") == as_json(message)
    assert_valid(message)


def test_final_reply_for_complete_clip_matches_expected_json() -> None:
    """The ready reply mentions the requester and shows the title literally in bold."""
    reply = render_final_reply(view(clip(COMPLETE_CLIP), ending=Ending.COMPLETE))

    assert reply is not None
    assert {
        "text": "<@U123ABC> your clip “Lobby door” is ready",
        "blocks": [
            {
                "type": "rich_text",
                "elements": [
                    {
                        "type": "rich_text_section",
                        "elements": [
                            {"type": "text", "text": "✅ "},
                            {"type": "user", "user_id": "U123ABC"},
                            {"type": "text", "text": " your clip "},
                            {"type": "text", "text": "Lobby door", "style": {"bold": True}},
                            {"type": "text", "text": " is ready."},
                        ],
                    }
                ],
            },
            {
                "type": "actions",
                "elements": [
                    {
                        "type": "button",
                        "action_id": "clip_open",
                        "text": {"type": "plain_text", "text": "Open in Rhombus"},
                        "value": CLIP_ID,
                        "style": "primary",
                        "url": f"https://console.rhombussystems.com/devices/cameras/{LOBBY}/?t=1732803300000",
                    }
                ],
            },
        ],
    } == as_json(reply)
    assert_valid(reply)


# --- States and endings -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "line", "summary"),
    [
        ("INITIATING", "⏳ Initiating · Processing video\n▰▰▰▰▱▱▱▱▱▱ 45%", "Initiating 45%"),
        ("UPLOADING", "⬆️ Uploading · Processing video\n▰▰▰▰▱▱▱▱▱▱ 45%", "Uploading 45%"),
        ("RENDERING", "🎞️ Rendering · Processing video\n▰▰▰▰▱▱▱▱▱▱ 45%", "Rendering 45%"),
        ("OFFLINE", "📴 Camera offline · Processing video\n▰▰▰▰▱▱▱▱▱▱ 45%", "Camera offline 45%"),
        (
            "SOMETHING_NEW",
            "❔ Status unknown · Processing video\n▰▰▰▰▱▱▱▱▱▱ 45%",
            "Status unknown 45%",
        ),
        ("FAILED", "❌ Failed: Processing video", "Failed: Processing video"),
        ("DELETED", "🗑️ This clip was deleted in Rhombus", "Deleted in Rhombus"),
        ("COMPLETE", "✅ Ready", "Ready"),
    ],
)
def test_status_line_says_each_status(status: str, line: str, summary: str) -> None:
    """Each status has its emoji and words, in the blocks and in the fallback text."""
    message = render_status(view(clip(RENDERING_CLIP, status=status)))

    assert line == section_texts(message)[1]
    assert f"Clip “Lobby door” — {summary}" == message.text


def test_failed_clip_gives_the_reason_from_current_operation() -> None:
    """A failed clip says why, in Rhombus's own words."""
    failed = clip(RENDERING_CLIP, status="FAILED", currentOperation="Storage unavailable")
    message = render_status(view(failed, ending=Ending.FAILED))

    expected_line = "❌ Failed: Storage unavailable"
    expected_text = "Clip “Lobby door” — Failed: Storage unavailable"
    assert expected_line == section_texts(message)[1]
    assert expected_text == message.text


def test_clip_that_rhombus_player_calls_done_is_ready() -> None:
    """100 % with the operation "Complete" reads as ready, as in Rhombus's own player."""
    done = clip(RENDERING_CLIP, percentComplete=100, currentOperation="Complete")

    expected = "✅ Ready"
    assert expected == section_texts(render_status(view(done)))[1]


@pytest.mark.parametrize(
    ("changes", "line", "summary"),
    [
        (
            {"ending": Ending.STOPPED, "stopped_by": "U777"},
            "⏹️ Stopped following — stopped by <@U777>",
            "Rendering 45% · Stopped following",
        ),
        (
            {"ending": Ending.STOPPED},
            "⏹️ Stopped following",
            "Rendering 45% · Stopped following",
        ),
        (
            {"ending": Ending.GAVE_UP, "give_up_minutes": 30},
            "⏸️ Stopped following: no progress for 30 minutes",
            "Rendering 45% · Stopped following: no progress for 30 minutes",
        ),
        (
            {"ending": Ending.GAVE_UP, "give_up_minutes": 1},
            "⏸️ Stopped following: no progress for 1 minute",
            "Rendering 45% · Stopped following: no progress for 1 minute",
        ),
        (
            {"ending": Ending.UNREACHABLE, "give_up_minutes": 15},
            "🔌 Stopped following: Rhombus could not be reached for 15 minutes",
            "Rendering 45% · Stopped following: Rhombus could not be reached for 15 minutes",
        ),
        (
            {"ending": Ending.NOT_FOUND, "notice": "Clip not found"},
            "🔍 Rhombus no longer finds this clip: Clip not found",
            "Rendering 45% · Rhombus no longer finds this clip: Clip not found",
        ),
    ],
)
def test_endings_are_said_plainly(changes: dict[str, Any], line: str, summary: str) -> None:
    """Why following stopped is said under the last known state."""
    message = render_status(view(clip(RENDERING_CLIP), **changes))

    assert line == section_texts(message)[2]
    assert f"Clip “Lobby door” — {summary}" == message.text
    assert_valid(message, users={REQUESTER, "U777"})


def test_clip_not_fetched_yet_says_it_is_being_looked_up() -> None:
    """Before the first answer from Rhombus the message shows the asked id and waits."""
    message = render_status(view(None))

    expected_header = {"type": "plain_text", "text": CLIP_ID}
    expected_line = "🔎 Looking up the clip in Rhombus…"
    expected_text = f"Clip “{CLIP_ID}” — Looking it up in Rhombus"
    expected_actions = [ACTION_OPEN, ACTION_REFRESH, ACTION_STOP]
    assert expected_header == message.blocks[0]["text"]
    assert expected_line == section_texts(message)[1]
    assert expected_text == message.text
    assert expected_actions == action_ids(message)
    assert_valid(message)


def test_clip_with_every_field_missing_renders_sensibly() -> None:
    """An all-null clip shows its id, "Status unknown" and who asked, never "None"."""
    message = render_status(view(Clip.model_validate({}), cameras={}))

    expected_blocks = [
        {"type": "header", "text": {"type": "plain_text", "text": CLIP_ID}},
        {"type": "section", "text": {"type": "plain_text", "text": "❔ Status unknown"}},
    ]
    expected_text = "Clip “AbCdEfGhIjKlMnOpQrStUv” — Status unknown"
    assert expected_blocks == message.blocks[:2]
    assert expected_text == message.text
    assert "None" not in json.dumps(as_json(message))
    assert_valid(message)


def test_notice_is_a_warning_line_while_following() -> None:
    """A transient notice shows with ⚠️, and goes away once following has ended."""
    following = render_status(view(clip(RENDERING_CLIP), notice="Rhombus unreachable, retrying"))
    ended = render_status(
        view(clip(RENDERING_CLIP), notice="Rhombus unreachable, retrying", ending=Ending.STOPPED)
    )

    expected = {
        "type": "context",
        "elements": [{"type": "plain_text", "text": "⚠️ Rhombus unreachable, retrying"}],
    }
    assert expected == following.blocks[2]
    assert "⚠️" not in json.dumps(ended.blocks, ensure_ascii=False)


def test_buttons_while_following_and_after() -> None:
    """Refresh and Stop updates only while following; Open in Rhombus always."""
    following = render_status(view(clip(RENDERING_CLIP)))

    expected_following = [ACTION_OPEN, ACTION_REFRESH, ACTION_STOP]
    expected_ended = [ACTION_OPEN]
    assert expected_following == action_ids(following)
    for ending in Ending:
        ended = render_status(view(clip(RENDERING_CLIP), ending=ending))
        assert expected_ended == action_ids(ended)


def test_view_percent_wins_and_is_clamped() -> None:
    """The tracker's percentage is shown instead of the clip's, kept within 0-100."""
    rendering = clip(RENDERING_CLIP)

    assert section_texts(render_status(view(rendering, percent=70)))[1].endswith("▰▰▰▰▰▰▰▱▱▱ 70%")
    assert section_texts(render_status(view(rendering, percent=-5)))[1].endswith("▱▱▱▱▱▱▱▱▱▱ 0%")
    assert section_texts(render_status(view(rendering, percent=10**30)))[1].endswith(
        "▰▰▰▰▰▰▰▰▰▰ 100%"
    )
    assert section_texts(render_status(view(clip(RENDERING_CLIP, percentComplete=99))))[1].endswith(
        "▰▰▰▰▰▰▰▰▰▱ 99%"
    )


def test_unknown_cameras_show_their_uuid_and_long_lists_are_cut() -> None:
    """Cameras without a known name show their uuid; beyond ten, the rest are counted."""
    devices = [f"cam{n:02d}.v0" for n in range(12)]
    message = render_status(view(clip(RENDERING_CLIP, deviceUuids=devices), cameras={}))

    expected = "📷 cam00, cam01, cam02, cam03, cam04, cam05, cam06, cam07, cam08, cam09 and 2 more"
    assert expected == section_texts(message)[2]


@pytest.mark.parametrize(
    ("changes", "fields"),
    [
        ({"durationSec": 0}, ["*Length*\n0 s"]),
        ({"durationSec": 45}, ["*Length*\n45 s"]),
        ({"durationSec": 7200}, ["*Length*\n2 h"]),
        ({"byteCount": 512}, ["*Size*\n512 B"]),
        ({"byteCount": 999_960}, ["*Size*\n1.0 MB"]),
        ({"byteCount": 3_400_000_000}, ["*Size*\n3.4 GB"]),
        ({"byteCount": -1, "durationSec": -1, "timestampMs": -1}, []),
        ({"videoResolution": {"width": 0, "height": 1080}}, []),
    ],
)
def test_footage_facts_are_formatted_or_left_out(
    changes: dict[str, Any], fields: list[str]
) -> None:
    """Lengths and sizes read naturally; impossible values are left out, not shown."""
    bare = {"status": "COMPLETE"} | changes
    message = render_status(view(clip(bare)))

    assert fields == text_objects([block.get("fields", []) for block in message.blocks], "mrkdwn")


# --- Every state is valid Block Kit ---------------------------------------------------------------


@pytest.mark.parametrize("ending", [None, *Ending])
@pytest.mark.parametrize("status", [*ClipStatus, None])
@pytest.mark.parametrize("variant", ["full", "empty", "none"])
def test_every_state_is_valid_block_kit(
    ending: Ending | None, status: ClipStatus | None, variant: str
) -> None:
    """Every status, every ending, an all-null clip and no clip at all give valid messages."""
    if variant == "none":
        clip_: Clip | None = None
    elif variant == "empty":
        clip_ = clip({}, status=status)
    else:
        clip_ = clip(COMPLETE_CLIP | RENDERING_CLIP, status=status)
    views = [
        view(clip_, ending=ending, stopped_by="U777", give_up_minutes=20, notice="Not found"),
        view(clip_, ending=ending, cameras={}, requester="", started_at=0, changed_at=-1),
    ]
    for each in views:
        messages = [render_status(each), render_final_reply(each)]
        for message in filter(None, messages):
            assert_valid(message, users={REQUESTER, "U777"})
            assert "None" not in json.dumps(as_json(message))


# --- Hostile text -------------------------------------------------------------------------------


@pytest.mark.parametrize("hostile", HOSTILE)
def test_hostile_text_is_inert_everywhere(hostile: str) -> None:
    """Mentions, links and formatting from Rhombus or users never come out live, at any length."""
    data = RENDERING_CLIP | {
        "title": hostile,
        "description": hostile,
        "currentOperation": hostile,
        "deviceUuids": [f"{hostile}.v0", f"{LOBBY}.v0"],
    }
    views = [
        view(clip(data), cameras={LOBBY: hostile}, notice=hostile, clip_id=hostile),
        view(clip(data, status="FAILED"), ending=Ending.FAILED, requester=hostile),
        view(clip(data), ending=Ending.NOT_FOUND, notice=hostile, stopped_by=hostile),
        view(clip(data, status="COMPLETE"), ending=Ending.COMPLETE, clip_id=hostile),
    ]
    for each in views:
        status = render_status(each)
        assert_valid(status)
        reply = render_final_reply(each)
        for message in [status] if reply is None else [status, reply]:
            assert_valid(message)
            for text in [message.text, *text_objects(message.blocks, "mrkdwn")]:
                for live in ("<!channel", "<!here", "<!everyone", "<@U999", "<http", "<#C"):
                    assert live not in text


def test_hostile_title_is_literal_plain_text_cut_to_the_header_limit() -> None:
    """The header keeps the title as typed (plain text is never parsed), cut to 150 characters."""
    title = "<!channel> *bold* " + "x" * 10_000
    message = render_status(view(clip(RENDERING_CLIP, title=title)))
    header = message.blocks[0]["text"]["text"]

    expected_length = HEADER_TEXT_LIMIT
    assert expected_length == len(header)
    assert header.startswith("<!channel> *bold* xxx")
    assert header.endswith("…")
    assert message.text.startswith("Clip “&lt;!channel&gt; *bold* xxx")


def test_final_reply_shows_a_hostile_title_literally() -> None:
    """Rich text carries the title as typed; the fallback text escapes it."""
    hostile = clip(COMPLETE_CLIP, title="<!here> *now*")
    reply = render_final_reply(view(hostile, ending=Ending.COMPLETE))

    assert reply is not None
    expected_text = "<@U123ABC> your clip “&lt;!here&gt; *now*” is ready"
    expected_title = {"type": "text", "text": "<!here> *now*", "style": {"bold": True}}
    assert expected_text == reply.text
    assert expected_title in reply.blocks[0]["elements"][0]["elements"]


optional_text = st.one_of(st.none(), st.text(), st.sampled_from(HOSTILE))
optional_int = st.one_of(st.none(), st.integers(), st.integers(-(10**20), 10**20))
clips = st.fixed_dictionaries(
    {},
    optional={
        "uuid": optional_text,
        "title": optional_text,
        "description": optional_text,
        "status": st.one_of(st.sampled_from([s.value for s in ClipStatus]), optional_text),
        "percentComplete": optional_int,
        "currentOperation": optional_text,
        "timestampMs": optional_int,
        "durationSec": optional_int,
        "deviceUuids": st.one_of(st.none(), st.lists(optional_text, max_size=15)),
        "videoResolution": st.fixed_dictionaries({"width": optional_int, "height": optional_int}),
        "byteCount": optional_int,
        "accessSettings": st.fixed_dictionaries({"visibility": optional_text}),
    },
).map(Clip.model_validate)


views = st.builds(
    StatusView,
    clip_id=st.one_of(st.text(), st.sampled_from(HOSTILE)),
    clip=st.one_of(st.none(), clips),
    requester=st.one_of(st.just(REQUESTER), st.text()),
    started_at=st.integers(),
    changed_at=st.integers(),
    percent=optional_int,
    cameras=st.dictionaries(st.text(), st.one_of(st.text(), st.sampled_from(HOSTILE))),
    ending=st.one_of(st.none(), st.sampled_from(Ending)),
    stopped_by=st.one_of(st.none(), st.just("U777"), st.text()),
    give_up_minutes=optional_int,
    notice=optional_text,
    console_url=st.sampled_from(["https://console.rhombussystems.com", "https://c.example/"]),
)


@pytest.mark.slow
@settings(max_examples=300, deadline=None)
@given(each=views)
def test_any_view_renders_valid_inert_messages(each: StatusView) -> None:
    """Whatever Rhombus and Slack send, the message is valid Block Kit with nothing live in it."""
    users = {user for user in (each.requester, each.stopped_by) if user}
    for message in filter(None, [render_status(each), render_final_reply(each)]):
        assert_valid(message, users)


# --- escape_mrkdwn, truncate, clip_link ---------------------------------------------------------


def test_escape_mrkdwn_escapes_the_three_control_characters() -> None:
    """&, < and > become entities, & first so nothing is escaped twice."""
    expected = "&lt;!channel&gt; &amp;lt; &amp; *b*"
    assert expected == escape_mrkdwn("<!channel> &lt; & *b*")


@pytest.mark.parametrize(
    ("text", "limit", "cut"),
    [
        ("short", 10, "short"),
        ("exactly10!", 10, "exactly10!"),
        ("Lobby door camera", 10, "Lobby doo…"),
        ("Lobby door", 7, "Lobby…"),
        ("ab&amp;cd", 5, "ab…"),
        ("ab&lt;cd", 6, "ab…"),
        ("ab&gt;cd", 7, "ab&gt;…"),
        ("a & b", 4, "a &…"),
        ("anything", 1, "…"),
        ("anything", 0, ""),
    ],
)
def test_truncate_cuts_with_an_ellipsis_and_keeps_entities_whole(
    text: str, limit: int, cut: str
) -> None:
    """Text longer than the limit ends in "…"; an entity is kept whole or dropped."""
    assert cut == truncate(text, limit)


@given(text=st.text(), limit=st.integers(1, 60))
def test_truncated_escaped_text_stays_within_the_limit_and_escaped(text: str, limit: int) -> None:
    """Cutting escaped text never exceeds the limit or leaves half an entity."""
    cut = truncate(escape_mrkdwn(text), limit)

    assert len(cut) <= limit
    assert "&" not in ESCAPE.sub("", cut)


@pytest.mark.parametrize(
    ("data", "console", "link"),
    [
        (
            RENDERING_CLIP,
            "https://console.rhombussystems.com",
            f"https://console.rhombussystems.com/devices/cameras/{LOBBY}/?t=1732803300000",
        ),
        (
            RENDERING_CLIP,
            "https://console.eu.rhombussystems.com/",
            f"https://console.eu.rhombussystems.com/devices/cameras/{LOBBY}/?t=1732803300000",
        ),
        (RENDERING_CLIP | {"deviceUuids": []}, "https://c.example", "https://c.example/"),
        (RENDERING_CLIP | {"timestampMs": None}, "https://c.example", "https://c.example/"),
        (
            RENDERING_CLIP | {"deviceUuids": ["a/b?c.v0"]},
            "https://c.example",
            "https://c.example/devices/cameras/a%2Fb%3Fc/?t=1732803300000",
        ),
        (RENDERING_CLIP | {"deviceUuids": ["x" * 5000]}, "https://c.example", "https://c.example/"),
    ],
)
def test_clip_link_points_at_the_camera_at_the_clip_start(
    data: dict[str, Any], console: str, link: str
) -> None:
    """The console link opens the first camera at the footage start, else the console itself."""
    assert link == clip_link(clip(data), console)


def test_clip_link_without_a_clip_is_the_console() -> None:
    """Before the clip is known, the button opens the console."""
    expected = "https://console.rhombussystems.com/"
    assert expected == clip_link(None)


# --- Fingerprint and time -----------------------------------------------------------------------


def test_fingerprint_is_equal_for_equal_views() -> None:
    """Rendering the same view twice gives the same fingerprint."""
    first = render_status(view(clip(RENDERING_CLIP)))
    second = render_status(view(clip(RENDERING_CLIP)))

    assert first.fingerprint == second.fingerprint
    assert re.fullmatch(r"[0-9a-f]{64}", first.fingerprint)


@pytest.mark.parametrize(
    "changes",
    [
        {"status": "UPLOADING"},
        {"percentComplete": 46},
        {"currentOperation": "Encoding"},
        {"title": "Back door"},
    ],
)
def test_fingerprint_changes_when_the_state_changes(changes: dict[str, Any]) -> None:
    """A new status, percentage, operation or title gives a new fingerprint."""
    before = render_status(view(clip(RENDERING_CLIP)))
    after = render_status(view(clip(RENDERING_CLIP, **changes)))

    assert before.fingerprint != after.fingerprint


def test_rendering_does_not_depend_on_the_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """The message needs no edit as time passes: every date comes from the view."""
    each = view(clip(RENDERING_CLIP))
    now = render_status(each)
    monkeypatch.setattr(time, "time", lambda: 4_000_000_000.0)
    monkeypatch.setattr(time, "time_ns", lambda: 4_000_000_000 * 10**9)
    later = render_status(each)

    assert now == later
    epochs = {
        int(match["epoch"])
        for text in text_objects(now.blocks, "mrkdwn")
        for match in OWN_ENTITY.finditer(text)
        if match["epoch"]
    }
    assert {1732803300, STARTED_AT, CHANGED_AT} == epochs


# --- Final reply --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ending", "data", "text"),
    [
        (Ending.COMPLETE, COMPLETE_CLIP, "<@U123ABC> your clip “Lobby door” is ready"),
        (
            Ending.FAILED,
            RENDERING_CLIP | {"status": "FAILED", "currentOperation": "Camera went offline"},
            "<@U123ABC> your clip “Lobby door” failed: Camera went offline",
        ),
        (
            Ending.DELETED,
            RENDERING_CLIP | {"status": "DELETED"},
            "<@U123ABC> your clip “Lobby door” was deleted in Rhombus",
        ),
    ],
)
def test_final_reply_mentions_the_requester(
    ending: Ending, data: dict[str, Any], text: str
) -> None:
    """A clip that reached its end is announced to whoever asked for it."""
    reply = render_final_reply(view(clip(data), ending=ending))

    assert reply is not None
    assert text == reply.text
    assert {"type": "user", "user_id": REQUESTER} in reply.blocks[0]["elements"][0]["elements"]
    assert_valid(reply)


def test_final_reply_without_a_valid_requester_mentions_no_one() -> None:
    """A requester id that is not a Slack user id is left out rather than written into mrkdwn."""
    reply = render_final_reply(
        view(clip(COMPLETE_CLIP), ending=Ending.COMPLETE, requester="<!here>")
    )

    assert reply is not None
    expected = "Your clip “Lobby door” is ready"
    assert expected == reply.text


@pytest.mark.parametrize(
    "ending", [None, Ending.STOPPED, Ending.GAVE_UP, Ending.UNREACHABLE, Ending.NOT_FOUND]
)
def test_final_reply_is_none_when_there_is_nothing_to_announce(ending: Ending | None) -> None:
    """Stopping, giving up or losing the clip is shown in the status message only."""
    assert render_final_reply(view(clip(COMPLETE_CLIP), ending=ending)) is None
