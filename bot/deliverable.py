"""Pure: whether a ready clip's video can go into the thread, and the one line saying why not.

No I/O: what Rhombus reported of the clip (and what Slack answered) in, a decision or a plain
line for the text reply out.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from bot.clips import Visibility
from bot.media import MEGABYTE

if TYPE_CHECKING:
    from bot.clips import Clip

BOT_NAME = "Rhombus Clips"  # manifest.yml's display name, for the /invite advice
NO_CLIP = "No video: Rhombus did not describe the finished clip."
RESTRICTED = "No video: the clip is not organisation-wide in Rhombus."
NO_REGION = "No video: Rhombus did not say where the video is stored."
NOT_FOR_THE_CHANNEL = frozenset({NO_CLIP, RESTRICTED})  # no thumbnail either
# Slack's codes meaning the workspace does not take this file (files.getUploadURLExternal,
# files.completeUploadExternal).
WORKSPACE_REFUSALS = frozenset(
    {
        "file_uploads_disabled",
        "file_uploads_except_images_disabled",
        "file_type_not_allowed",
        "file_upload_size_restricted",
        "storage_limit_reached",
        "posting_to_channel_denied",
        "restricted_action",
    }
)
# Slack shares a file only where the bot is a member ("User/bot membership is required for the
# specified channel", files.completeUploadExternal); a private channel it is not in is hidden.
NOT_A_MEMBER = frozenset({"not_in_channel", "channel_not_found", "invalid_channel"})
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9 ._-]+")
_REGION = re.compile(r"[A-Za-z0-9._-]{1,64}")
_SHA256 = re.compile(r"[0-9a-fA-F]{64}")


def why_not(clip: Clip | None, *, max_bytes: int, post_restricted_clips: bool) -> str | None:
    """Why the clip's video will not be uploaded, as one plain line; None if it will."""
    if clip is None:
        return NO_CLIP
    if clip.visibility is not Visibility.ORG_WIDE and not post_restricted_clips:
        return RESTRICTED
    if region(clip) is None:
        return NO_REGION
    size = byte_count(clip)
    if size is not None and size > max_bytes:
        return (
            f"No video: the clip is {size / MEGABYTE:,.0f} MB, more than the "
            f"{max_bytes / MEGABYTE:,.0f} MB I upload; open it in Rhombus."
        )
    return None


def region(clip: Clip | None) -> str | None:
    """Where the clip's media lives; the thumbnail's region when the clip's is missing."""
    if clip is None:
        return None
    for location in (clip.clip_location, clip.thumbnail_location):
        if location is not None and location.region and _REGION.fullmatch(location.region):
            return location.region
    return None


def byte_count(clip: Clip | None) -> int | None:
    """The clip's size, if Rhombus gave a believable one."""
    size = clip.byte_count if clip is not None else None
    return size if size is not None and size > 0 else None


def sha256(clip: Clip | None) -> str | None:
    """The clip's sha256, if Rhombus gave one that looks like one."""
    digest = clip.sha256_hex if clip is not None else None
    return digest.lower() if digest and _SHA256.fullmatch(digest) else None


def filename(title: str, clip_id: str) -> str:
    """The mp4's name in Slack: the clip's title in plain characters."""
    name = " ".join(_UNSAFE_NAME.sub(" ", title).split())[:80].strip(" .")
    return f"{name or clip_id}.mp4"


def refusal_line(error: str) -> str:
    """Why there is no video, when Slack refused it with `error`."""
    if error in NOT_A_MEMBER:
        return f"No video: I am not in this channel; `/invite @{BOT_NAME}` and I can post videos."
    if error in WORKSPACE_REFUSALS:
        return f"No video: this workspace does not let me upload it ({error})."
    if error == "is_archived":
        return "No video: the channel is archived."
    return f"No video: Slack refused the upload ({error})."


def media_line(reason: str) -> str:
    """Why there is no video, when Rhombus's media could not be had (`reason`, a sentence)."""
    return f"No video: {reason.rstrip('.')}." if reason else "No video."
