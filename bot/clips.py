"""The domain: a Rhombus saved clip, its status, how following it ends, and clip references."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Annotated, Any, TypeVar
from urllib.parse import parse_qsl, unquote, urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    ValidationError,
    ValidatorFunctionWrapHandler,
    WrapValidator,
)
from pydantic.alias_generators import to_camel

CLIP_ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{22}")
CLIP_ID_RULE = "clip ids are 22 characters of A-Z a-z 0-9 - _"
_QUOTED_TOKEN_LIMIT = 40


class ClipStatus(StrEnum):
    """Rhombus's ClipStatusEnum. Values Rhombus adds later arrive as UNKNOWN."""

    INITIATING = "INITIATING"
    UPLOADING = "UPLOADING"
    RENDERING = "RENDERING"
    FAILED = "FAILED"
    COMPLETE = "COMPLETE"
    OFFLINE = "OFFLINE"
    DELETED = "DELETED"
    UNKNOWN = "UNKNOWN"

    @classmethod
    def parse(cls, value: object) -> ClipStatus:
        """Read a status from an API answer; anything unrecognised is UNKNOWN."""
        if isinstance(value, str):
            try:
                return cls(value.strip().upper())
            except ValueError:
                return cls.UNKNOWN
        return cls.UNKNOWN

    @property
    def is_final(self) -> bool:
        """Whether a clip in this status will never change again."""
        return self in _FINAL_STATUSES


_FINAL_STATUSES = frozenset({ClipStatus.COMPLETE, ClipStatus.FAILED, ClipStatus.DELETED})


class Ending(StrEnum):
    """How following a clip ended: stored with its tracking, shown by its status message.

    The values are what the database holds; the last two were stored in lower case before they
    joined this vocabulary, and stay so.
    """

    # The clip's own outcome, announced in the message's thread.
    COMPLETE = "COMPLETE"
    FAILED = "FAILED"
    DELETED = "DELETED"
    # The bot stopped following; the status message says why.
    STOPPED = "STOPPED"  # someone pressed Stop
    GAVE_UP = "GAVE_UP"  # no progress for too long
    UNREACHABLE = "UNREACHABLE"  # Rhombus could not be reached for too long
    NOT_FOUND = "NOT_FOUND"  # Rhombus kept answering that it has no such clip
    CANCELLED = "CANCELLED"  # someone cancelled a clip made from Slack
    # The message can no longer be shown to anyone.
    MESSAGE_GONE = "message_gone"  # deleted, or its channel archived or left
    UNINSTALLED = "uninstalled"  # the app's install in the workspace is gone

    @property
    def is_outcome(self) -> bool:
        """Whether this is the clip's own end (ready, failed, deleted), worth announcing."""
        return self in _OUTCOMES

    @property
    def is_shown(self) -> bool:
        """Whether the status message can still show it."""
        return self not in _UNSHOWN


_OUTCOMES = frozenset({Ending.COMPLETE, Ending.FAILED, Ending.DELETED})
_UNSHOWN = frozenset({Ending.MESSAGE_GONE, Ending.UNINSTALLED})


class Visibility(StrEnum):
    """Who may see a clip in Rhombus (ClipVisibilityEnum)."""

    PRIVATE = "PRIVATE"
    ROLE_RESTRICTED = "ROLE_RESTRICTED"
    ORG_WIDE = "ORG_WIDE"
    UNKNOWN = "UNKNOWN"


def _none_when_invalid(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:  # noqa: ANN401
    # Rhombus documents every field as nullable; a field of the wrong type is treated the same
    # way, so one odd field never hides the rest of the clip.
    try:
        return handler(value)
    except ValidationError:
        return None


T = TypeVar("T")
Lenient = Annotated[T | None, WrapValidator(_none_when_invalid)]


class ApiModel(BaseModel):
    """Base of Rhombus answer models: camelCase names, unknown fields ignored, immutable."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        frozen=True,
        extra="ignore",
    )


class VideoResolution(ApiModel):
    """Pixel size of a rendered clip."""

    width: Lenient[int] = None
    height: Lenient[int] = None


class AccessSettings(ApiModel):
    """Rhombus's ClipAccessSettings: who may see the clip."""

    visibility: Annotated[Visibility, WrapValidator(lambda v, _h: _parse_visibility(v))] = (
        Visibility.UNKNOWN
    )


def _parse_visibility(value: object) -> Visibility:
    try:
        return Visibility(value) if isinstance(value, str) else Visibility.UNKNOWN
    except ValueError:
        return Visibility.UNKNOWN


class Location(ApiModel):
    """Where a clip's media is stored."""

    region: Lenient[str] = None


class Clip(ApiModel):
    """A saved clip with its processing progress (Event_SavedClipWithProgressType)."""

    uuid: Lenient[str] = None
    title: Lenient[str] = None
    description: Lenient[str] = None
    status: Annotated[ClipStatus, WrapValidator(lambda v, _h: ClipStatus.parse(v))] = (
        ClipStatus.UNKNOWN
    )
    percent_complete: Lenient[int] = None
    current_operation: Lenient[str] = None
    created_at_ms: Lenient[int] = None
    timestamp_ms: Lenient[int] = None
    duration_sec: Lenient[int] = None
    last_updated_sec: Lenient[int] = None
    device_uuids: Lenient[list[Lenient[str]]] = None
    video_resolution: Lenient[VideoResolution] = None
    byte_count: Lenient[int] = None
    access_settings: Lenient[AccessSettings] = None
    clip_location: Lenient[Location] = None
    thumbnail_location: Lenient[Location] = None
    sha256_hex: Lenient[str] = None
    org_uuid: Lenient[str] = None

    @property
    def succeeded(self) -> bool:
        """Whether the clip is ready, by the same rule Rhombus's own player uses."""
        return self.status is ClipStatus.COMPLETE or (
            self.percent_complete == 100 and self.current_operation == "Complete"
        )

    @property
    def ending(self) -> Ending | None:
        """The clip's own outcome once it has one: the one rule from a clip to its ending."""
        if self.succeeded:
            return Ending.COMPLETE
        if self.status is ClipStatus.DELETED:
            return Ending.DELETED
        if self.status is ClipStatus.FAILED:
            return Ending.FAILED
        return None

    @property
    def is_final(self) -> bool:
        """Whether the clip will not change any more, so following it can stop."""
        return self.ending is not None

    @property
    def percent(self) -> int | None:
        """The reported percentage of the current operation, clamped to 0-100."""
        if self.percent_complete is None:
            return None
        return max(0, min(100, self.percent_complete))

    @property
    def camera_ids(self) -> list[str]:
        """The cameras of the clip, without facets (`.v0`), in order, without repeats."""
        seen: dict[str, None] = {}
        for device in self.device_uuids or ():
            if device:
                seen.setdefault(device.split(".", 1)[0], None)
        return list(seen)

    @property
    def visibility(self) -> Visibility:
        """Who may see the clip in Rhombus; UNKNOWN when Rhombus did not say."""
        return self.access_settings.visibility if self.access_settings else Visibility.UNKNOWN


# --- Clip references -----------------------------------------------------------------------------

# Slack wraps links, mentions and specials in angle brackets: <https://x|label>, <@U1>, <!here>.
_SLACK_ENTITY = re.compile(r"<([^<>]*)>")
_URL = re.compile(r"https?://[^\s<>|]+", re.IGNORECASE)
_SEPARATORS = re.compile(r"[\s,;]+")
# Prose puts punctuation around ids ("see AbC…xyz."); none of it can be part of an id.
_PUNCTUATION = ".,;:!?()[]{}\"'*`\u201c\u201d\u2018\u2019"
_CLIP_QUERY_KEYS = ("clipuuid", "clipid", "clip", "uuid", "id")


@dataclass(frozen=True)
class Rejection:
    """A piece of text that is not a clip reference, and why."""

    text: str
    reason: str


@dataclass
class ParsedReferences:
    """The clip ids found in a text, in order and without repeats, and what was rejected."""

    clip_ids: list[str] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)

    def _add(self, clip_id: str) -> None:
        if clip_id not in self.clip_ids:
            self.clip_ids.append(clip_id)


def is_clip_id(text: str) -> bool:
    """Whether the text is exactly one clip id (a RUUID)."""
    return CLIP_ID_PATTERN.fullmatch(text) is not None


def quote_for_reason(text: str) -> str:
    """Show a piece of user input inside a reason: short, one line, in code, inert in mrkdwn."""
    flat = " ".join(text.split()).replace("`", "'")
    if len(flat) > _QUOTED_TOKEN_LIMIT:
        flat = flat[: _QUOTED_TOKEN_LIMIT - 1] + "…"
    escaped = flat.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return f"`{escaped}`"


def clip_id_from_url(url: str) -> str | None:
    """The clip id in a link: a clip-ish query value, else the last path segment that is one."""
    try:
        parts = urlsplit(url)
        query = parse_qsl(parts.query, keep_blank_values=False)
    except ValueError:
        return None
    by_key = {key.lower(): value for key, value in query}
    for key in _CLIP_QUERY_KEYS:
        if is_clip_id(by_key.get(key, "")):
            return by_key[key]
    segments = [unquote(s) for s in parts.path.split("/") if s]
    for segment in reversed(segments):
        if is_clip_id(segment):
            return segment
    for _key, value in query:
        if is_clip_id(value):
            return value
    return None


def parse_references(text: str) -> ParsedReferences:
    """Read `/clip` text strictly: every word must be a clip id or a link containing one."""
    result = ParsedReferences()
    for token in _tokens(text):
        _read_token(token, result, strict=True)
    return result


def find_references(text: str) -> list[str]:
    """Find clip ids in free text (a message), ignoring every word that is not one."""
    result = ParsedReferences()
    for token in _tokens(text):
        _read_token(token, result, strict=False)
    return result.clip_ids


def _tokens(text: str) -> list[str]:
    """Split text into Slack entities (kept whole, brackets included) and plain words."""
    tokens: list[str] = []
    position = 0
    for match in _SLACK_ENTITY.finditer(text):
        tokens.extend(_SEPARATORS.split(text[position : match.start()]))
        tokens.append(match.group(0))
        position = match.end()
    tokens.extend(_SEPARATORS.split(text[position:]))
    return [token for token in tokens if token]


def _read_token(token: str, result: ParsedReferences, *, strict: bool) -> None:
    if token.startswith("<") and token.endswith(">"):
        target = token[1:-1].split("|", 1)[0]
        if _URL.fullmatch(target):
            _read_url(target, token, result, strict=strict)
        elif strict:
            result.rejected.append(
                Rejection(token, f"{quote_for_reason(token)} is not a clip id or a clip link")
            )
        return
    bare = token.strip(_PUNCTUATION)
    if is_clip_id(bare):
        result._add(bare)  # noqa: SLF001
        return
    if _URL.fullmatch(token):
        _read_url(token, token, result, strict=strict)
        return
    if strict:
        result.rejected.append(
            Rejection(token, f"{quote_for_reason(token)} is not a clip id: {CLIP_ID_RULE}")
        )


def _read_url(url: str, token: str, result: ParsedReferences, *, strict: bool) -> None:
    clip_id = clip_id_from_url(url)
    if clip_id is not None:
        result._add(clip_id)  # noqa: SLF001
    elif strict:
        result.rejected.append(
            Rejection(token, f"the link {quote_for_reason(url)} does not contain a clip id")
        )
