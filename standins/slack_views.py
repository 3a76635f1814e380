"""The Slack stand-in's trigger ids (for `views.open`) and people (`users.info`).

Facts from Slack's docs: a trigger_id is single-use and valid for 3 s; a modal has a title of at
most 24 characters and at most 100 blocks; `users.info` needs `users:read` and gives `tz` (an IANA
name) and `tz_offset` (seconds), and the person's role: `is_admin`, `is_owner`, `is_primary_owner`
(workspace admins and owners), `is_restricted` and `is_ultra_restricted` (guests)
(https://docs.slack.dev/reference/objects/user-object).
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

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
    is_admin: bool = False
    is_owner: bool = False
    is_primary_owner: bool = False
    is_restricted: bool = False  # a multi-channel guest
    is_ultra_restricted: bool = False  # a single-channel guest


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

    def refusal(self, trigger_id: str) -> str | None:
        """Why views.open must refuse this trigger id (Slack's error code), or None."""
        if trigger_id not in self._triggers:
            return "invalid_trigger_id"
        if trigger_id in self._used:
            return "exchanged_trigger_id"
        if self.clock() - self._triggers[trigger_id] > TRIGGER_SECONDS:
            return "expired_trigger_id"
        return None

    def spend(self, trigger_id: str, view: Json) -> None:
        """Use the trigger id up on the view it opened."""
        self._used.add(trigger_id)
        self.opened.append(view)

    def users_info(self, args: Json) -> Json:
        """users.info."""
        person = self.people.get(str(args.get("user") or ""))
        if person is None:
            return {"ok": False, "error": "user_not_found"}
        user: Json = {
            "id": person.id,
            "name": person.name,
            "deleted": False,
            "is_bot": False,
            "is_app_user": False,
            "is_admin": person.is_admin,
            "is_owner": person.is_owner,
            "is_primary_owner": person.is_primary_owner,
            "is_restricted": person.is_restricted,
            "is_ultra_restricted": person.is_ultra_restricted,
        }
        if person.tz is not None:
            user |= {"tz": person.tz, "tz_label": person.tz, "tz_offset": person.tz_offset}
        return {"ok": True, "user": user}
