"""The Slack stand-in's modals and people: `views.open` with trigger ids, and `users.info`.

Facts from Slack's docs: a trigger_id is single-use and valid for 3 s; a modal has a title of at
most 24 characters and at most 100 blocks; `users.info` needs `users:read` and gives `tz` (an IANA
name) and `tz_offset` (seconds).
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from slack_sdk.errors import SlackObjectFormationError
from slack_sdk.models.views import View

if TYPE_CHECKING:
    from collections.abc import Callable

Json = dict[str, Any]

TRIGGER_SECONDS = 3.0
MAX_VIEW_BLOCKS = 100
DEFAULT_TZ = ("America/Los_Angeles", -8 * 3600)


@dataclass
class Person:
    """A person in the fake workspace, as users.info tells of them."""

    id: str
    name: str
    tz: str | None = DEFAULT_TZ[0]
    tz_offset: int = DEFAULT_TZ[1]


@dataclass
class Views:
    """Trigger ids handed out with interactions, the modals opened with them, and people."""

    clock: Callable[[], float] = time.monotonic
    opened: list[Json] = field(default_factory=list)  # every view opened, as sent
    people: dict[str, Person] = field(
        default_factory=lambda: {
            "U0ALICE": Person("U0ALICE", "alice"),
            "U0BOB": Person("U0BOB", "bob"),
        }
    )
    _triggers: dict[str, float] = field(default_factory=dict)  # trigger id -> issued at
    _used: set[str] = field(default_factory=set)

    def trigger(self) -> str:
        """A fresh trigger id, as Slack sends with a command or a click."""
        trigger_id = (
            f"{secrets.randbelow(10**11)}.{secrets.randbelow(10**12)}.{secrets.token_hex(16)}"
        )
        self._triggers[trigger_id] = self.clock()
        return trigger_id

    def open(self, args: Json) -> Json:
        """views.open."""
        trigger_id = args.get("trigger_id")
        if not isinstance(trigger_id, str) or not trigger_id:
            return {"ok": False, "error": "invalid_arguments"}
        if trigger_id not in self._triggers:
            return {"ok": False, "error": "invalid_trigger_id"}
        if trigger_id in self._used:
            return {"ok": False, "error": "exchanged_trigger_id"}
        if self.clock() - self._triggers[trigger_id] > TRIGGER_SECONDS:
            return {"ok": False, "error": "expired_trigger_id"}
        view = _view(args.get("view"))
        if isinstance(view, str):
            return {
                "ok": False,
                "error": "invalid_arguments",
                "response_metadata": {"messages": [view]},
            }
        self._used.add(trigger_id)
        view_id = "V" + secrets.token_hex(5).upper()
        self.opened.append(view)
        return {"ok": True, "view": {**view, "id": view_id, "hash": secrets.token_hex(8)}}

    def users_info(self, args: Json) -> Json:
        """users.info."""
        person = self.people.get(str(args.get("user") or ""))
        if person is None:
            return {"ok": False, "error": "user_not_found"}
        user: Json = {"id": person.id, "name": person.name, "deleted": False, "is_bot": False}
        if person.tz is not None:
            user |= {"tz": person.tz, "tz_label": person.tz, "tz_offset": person.tz_offset}
        return {"ok": True, "user": user}


def _view(raw: object) -> Json | str:
    """The view, or what is wrong with it."""
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            return "[ERROR] view is not JSON"
    if not isinstance(raw, dict):
        return "[ERROR] view must be an object"
    if raw.get("type") != "modal":
        return "[ERROR] view type must be modal"
    blocks = raw.get("blocks")
    if not isinstance(blocks, list) or len(blocks) > MAX_VIEW_BLOCKS:
        return f"[ERROR] view needs a list of at most {MAX_VIEW_BLOCKS} blocks"
    try:
        View(**raw).validate_json()
    except (SlackObjectFormationError, TypeError, ValueError, KeyError, AttributeError) as error:
        return f"[ERROR] {error}"
    return raw
