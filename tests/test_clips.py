"""The clip model and the clip references people paste."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from bot.clips import (
    Clip,
    ClipStatus,
    Visibility,
    clip_id_from_url,
    find_references,
    parse_references,
)

A = "AAAAAAAAAAAAAAAAAAAAAA"
B = "B-b_0123456789abcdefgh"
C = "Cccccccccccccccccccc99"


def test_bare_ids_in_order_without_repeats():
    """Several ids, separated by spaces or commas, come out in order, once each."""
    parsed = parse_references(f"{A}, {B}  {A}\n{C}")

    assert [A, B, C] == parsed.clip_ids
    assert [] == parsed.rejected


def test_slack_wrapped_link_with_label():
    """Slack sends pasted links as <url|label>; the id is read from the url's path."""
    parsed = parse_references(f"<https://console.rhombussystems.com/clips/{A}/|my clip>")

    assert [A] == parsed.clip_ids


def test_link_with_id_in_query():
    """A clip id in a query value is found, clip-ish keys first."""
    url = f"https://console.rhombussystems.com/devices/cameras/{B}/?clipUuid={A}"

    assert A == clip_id_from_url(url)


def test_last_path_segment_wins_over_earlier_ones():
    """When a link has several ids in its path, the last one names the clip."""
    assert C == clip_id_from_url(f"https://x.example/orgs/{A}/clips/{C}")


def test_rejects_short_token_with_reason():
    """A word that is not a clip id is rejected with the rule it breaks."""
    parsed = parse_references("abc")

    assert [] == parsed.clip_ids
    assert ["`abc` is not a clip id: clip ids are 22 characters of A-Z a-z 0-9 - _"] == [
        r.reason for r in parsed.rejected
    ]


def test_rejects_link_without_id():
    """A link with no clip id in it is rejected, naming the link."""
    parsed = parse_references("<https://example.com/nothing-here>")

    assert ["the link `https://example.com/nothing-here` does not contain a clip id"] == [
        r.reason for r in parsed.rejected
    ]


def test_mentions_and_specials_are_rejected_inertly():
    """`<!channel>` or `<@U1>` are not ids, and their reason cannot ping anyone."""
    parsed = parse_references("<!channel> <@U123>")

    reasons = [r.reason for r in parsed.rejected]
    assert [
        "`&lt;!channel&gt;` is not a clip id or a clip link",
        "`&lt;@U123&gt;` is not a clip id or a clip link",
    ] == reasons


def test_long_garbage_is_quoted_short():
    """A huge word is quoted in at most 40 characters."""
    parsed = parse_references("x" * 5000)

    expected = "`" + "x" * 39 + "…` is not a clip id: clip ids are 22 characters of A-Z a-z 0-9 - _"
    assert expected == parsed.rejected[0].reason


def test_find_references_ignores_prose():
    """In a message, words around the ids are ignored."""
    text = f"Hi team, is the lobby clip ({A}) ready? Also <https://x.example/c/{B}|this one>."

    assert [A, B] == find_references(text)


@given(st.text())
def test_parsing_never_crashes(text):
    """Any text parses into ids that are valid and rejections that are inert."""
    parsed = parse_references(text)

    assert all(len(clip_id) == 22 for clip_id in parsed.clip_ids)
    for rejection in parsed.rejected:
        assert "<" not in rejection.reason
        assert len(rejection.reason) < 200
    find_references(text)


@given(st.lists(st.sampled_from([A, B, C, "junk", "<https://x.example/" + A + ">", ","])))
def test_every_valid_reference_is_found(words):
    """Every id present, bare or in a link, is found exactly once."""
    parsed = parse_references(" ".join(words))

    ids = [w if len(w) == 22 else A for w in words if A in w or len(w) == 22]
    expected = list(dict.fromkeys(ids))
    assert expected == parsed.clip_ids


def test_clip_from_full_answer():
    """A complete Rhombus clip reads into typed fields."""
    clip = Clip.model_validate(
        {
            "uuid": A,
            "title": "Lobby",
            "status": "RENDERING",
            "percentComplete": 45,
            "currentOperation": "Processing video",
            "deviceUuids": [f"{B}.v0", f"{B}.a0", f"{C}.v0"],
            "accessSettings": {"visibility": "ORG_WIDE"},
            "videoResolution": {"width": 1920, "height": 1080},
        }
    )

    assert ClipStatus.RENDERING is clip.status
    assert 45 == clip.percent
    assert [B, C] == clip.camera_ids
    assert Visibility.ORG_WIDE is clip.visibility
    assert not clip.is_final


def test_clip_tolerates_nulls_garbage_and_unknown_status():
    """Nulls, wrong types and a status Rhombus added later never crash the model."""
    clip = Clip.model_validate(
        {
            "uuid": None,
            "status": "TELEPORTING",
            "percentComplete": "lots",
            "deviceUuids": [None, 7, f"{A}.v0"],
            "videoResolution": "big",
            "accessSettings": {"visibility": "SECRET"},
        }
    )

    assert ClipStatus.UNKNOWN is clip.status
    assert clip.percent is None
    assert [A] == clip.camera_ids
    assert clip.video_resolution is None
    assert Visibility.UNKNOWN is clip.visibility


def test_final_statuses():
    """COMPLETE, FAILED and DELETED are final; OFFLINE is not."""
    finals = {status for status in ClipStatus if status.is_final}

    assert {ClipStatus.COMPLETE, ClipStatus.FAILED, ClipStatus.DELETED} == finals


def test_complete_by_percent_and_operation():
    """Like Rhombus's player: 100% with operation "Complete" counts as done."""
    clip = Clip.model_validate(
        {"status": "RENDERING", "percentComplete": 100, "currentOperation": "Complete"}
    )

    assert clip.succeeded
    assert clip.is_final


def test_percent_is_clamped():
    """Percentages outside 0-100 are clamped."""
    assert 100 == Clip.model_validate({"percentComplete": 250}).percent
    assert 0 == Clip.model_validate({"percentComplete": -3}).percent
