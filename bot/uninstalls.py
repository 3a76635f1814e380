"""A workspace uninstalling the app: its installation, Rhombus key and trackings go, everywhere.

Slack sends `app_uninstalled` when the app is removed, and `tokens_revoked` when its bot token is
revoked; either reaches one replica. It deletes the installation and the Rhombus connection, ends
the workspace's trackings in the database, and tells every replica (`changed`), so the one
following that workspace's clips stops at once.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Any, Protocol

from bot.clips import Ending

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from slack_bolt.context.async_context import AsyncBoltContext

logger = logging.getLogger(__name__)

_TEAM_ID = re.compile(r"[TE][A-Z0-9]{2,31}")


class Removable(Protocol):
    """A per-workspace store the uninstall empties (installations, Rhombus connections)."""

    async def remove(self, team_id: str) -> object:
        """Delete what is stored for the workspace."""
        ...


class Ender(Protocol):
    """The tracker: ends a workspace's trackings."""

    async def end_team(self, team_id: str, ending: Ending) -> int:
        """End every open tracking of the workspace; how many were open."""
        ...


class Uninstalls:
    """Listens for `app_uninstalled` and `tokens_revoked`."""

    def __init__(
        self,
        *,
        installations: Removable,
        keys: Removable,
        tracker: Ender,
        changed: Callable[[str], Awaitable[None]],
    ) -> None:
        self._installations = installations
        self._keys = keys
        self._tracker = tracker
        self._changed = changed  # reads the workspace again here and tells the other replicas

    async def uninstalled(self, body: dict[str, Any], context: AsyncBoltContext) -> None:
        """`app_uninstalled`: forget the workspace entirely."""
        await self._forget(_team_of(body, context), "the app was uninstalled")

    async def tokens_revoked(
        self, event: dict[str, Any], body: dict[str, Any], context: AsyncBoltContext
    ) -> None:
        """`tokens_revoked`: a revoked bot token is an uninstall (user tokens are not ours)."""
        tokens = event.get("tokens")
        if isinstance(tokens, dict) and tokens.get("bot"):
            await self._forget(_team_of(body, context), "its bot token was revoked")

    async def _forget(self, team_id: str | None, why: str) -> None:
        if team_id is None:
            logger.warning("an uninstall event without a workspace; ignored")
            return
        await self._installations.remove(team_id)
        await self._keys.remove(team_id)
        ended = await self._tracker.end_team(team_id, Ending.UNINSTALLED)
        await self._changed(team_id)
        logger.info("workspace %s: %s; %d tracking(s) ended", team_id, why, ended)


def _team_of(body: dict[str, Any], context: AsyncBoltContext) -> str | None:
    team_id = body.get("team_id") or context.team_id
    return team_id if isinstance(team_id, str) and _TEAM_ID.fullmatch(team_id) else None
