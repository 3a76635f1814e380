"""What a ready clip gets in its thread, decided from what Rhombus and Slack said: tables."""

from __future__ import annotations

import pytest

from bot.clips import Clip
from bot.deliverable import (
    byte_count,
    filename,
    media_line,
    refusal_line,
    region,
    sha256,
    why_not,
)

MB = 1_000_000
DIGEST = "ab" * 32


def clip(**fields: object) -> Clip:
    """A complete organisation-wide clip of 10 MB in us-west-2, with `fields` on top."""
    return Clip.model_validate(
        {
            "status": "COMPLETE",
            "accessSettings": {"visibility": "ORG_WIDE"},
            "clipLocation": {"region": "us-west-2"},
            "byteCount": 10 * MB,
            **fields,
        }
    )


@pytest.mark.parametrize(
    ("fields", "post_restricted", "expected"),
    [
        ({}, False, None),
        ({"accessSettings": {"visibility": "PRIVATE"}}, False, "not organisation-wide"),
        ({"accessSettings": {"visibility": "PRIVATE"}}, True, None),
        ({"accessSettings": None}, False, "not organisation-wide"),
        ({"clipLocation": None}, False, "did not say where"),
        ({"clipLocation": None, "thumbnailLocation": {"region": "eu-1"}}, False, None),
        ({"clipLocation": {"region": "../../x"}}, False, "did not say where"),
        ({"byteCount": 201 * MB}, False, "the clip is 201 MB, more than the 200 MB I upload"),
        ({"byteCount": 200 * MB}, False, None),
        ({"byteCount": -1}, False, None),  # unknown: the download's own limit applies
        ({"byteCount": "lots"}, False, None),
    ],
)
def test_why_not(fields, post_restricted, expected):
    """A clip goes up unless it is restricted, nowhere, or over the limit."""
    line = why_not(clip(**fields), max_bytes=200 * MB, post_restricted_clips=post_restricted)

    assert (expected is None) == (line is None), line
    assert expected is None or expected in str(line)


def test_no_clip_no_video():
    """Without the clip's answer there is nothing to fetch."""
    assert "No video: Rhombus did not describe the finished clip." == why_not(
        None, max_bytes=MB, post_restricted_clips=False
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (DIGEST, DIGEST),
        (DIGEST.upper(), DIGEST),
        ("ab" * 31, None),
        ("zz" * 32, None),
        (None, None),
    ],
)
def test_only_a_digest_is_a_digest(value, expected):
    """sha256Hex is used only when it is 64 hex digits."""
    assert expected == sha256(clip(sha256Hex=value))


def test_sizes_and_regions_read_leniently():
    """A believable size and a plain region, or nothing."""
    assert (10 * MB, None, "us-west-2", None) == (
        byte_count(clip()),
        byte_count(clip(byteCount=0)),
        region(clip()),
        region(clip(clipLocation={"region": "a/b"})),
    )


@pytest.mark.parametrize(
    ("title", "expected"),
    [
        ("Lobby door", "Lobby door.mp4"),
        ("Lobby: door / 2", "Lobby door 2.mp4"),
        ("../../etc/passwd", "etc passwd.mp4"),
        ("✨✨", "LobbyClip0123456789abc.mp4"),
        ("x" * 300, "x" * 80 + ".mp4"),
    ],
)
def test_filenames_are_plain(title, expected):
    """The mp4's name keeps letters, digits, spaces, dots, dashes; never empty."""
    assert expected == filename(title, "LobbyClip0123456789abc")


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (
            "not_in_channel",
            "No video: I am not in this channel; `/invite @Rhombus Clips` and I can post videos.",
        ),
        (
            "channel_not_found",
            "No video: I am not in this channel; `/invite @Rhombus Clips` and I can post videos.",
        ),
        (
            "file_uploads_disabled",
            "No video: this workspace does not let me upload it (file_uploads_disabled).",
        ),
        ("is_archived", "No video: the channel is archived."),
        ("weird_new_error", "No video: Slack refused the upload (weird_new_error)."),
    ],
)
def test_refusal_lines(error, expected):
    """Each refusal from Slack reads as one plain line."""
    assert expected == refusal_line(error)


def test_media_line():
    """Rhombus's reason becomes the end of the line."""
    assert "No video: Rhombus refused the media." == media_line("Rhombus refused the media")
