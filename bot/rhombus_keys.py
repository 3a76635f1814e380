"""The `rhombus_connections` table: each workspace's own Rhombus key, sealed at rest.

In distribution mode every workspace connects its own Rhombus organisation. Its key is sealed
with `ENCRYPTION_KEYS` (`bot.secret_box`) before it is written and never shown again but for its
last 4 characters. A table of its own: `create_all` adds it to an existing database.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, get_args

from pydantic import SecretStr
from sqlalchemy import Float, String, Text, delete, select
from sqlalchemy.orm import Mapped, mapped_column

from bot.secret_box import SecretUnreadableError
from bot.store import Base

if TYPE_CHECKING:
    from bot.secret_box import SecretBox
    from bot.store import Store

logger = logging.getLogger(__name__)

Region = Literal["US", "EU"]
KeyKind = Literal["api", "partner"]
REGIONS: tuple[Region, ...] = get_args(Region)
KEY_KINDS: tuple[KeyKind, ...] = get_args(KeyKind)
# The x-auth-scheme each kind of key is sent with (RHOMBUS.md: partner keys act for one client
# organisation, named in x-auth-org).
AUTH_SCHEMES: dict[KeyKind, str] = {"api": "api-token", "partner": "partner-api-token"}


@dataclass(frozen=True)
class RhombusConnection:
    """A workspace's Rhombus organisation: its key, region, and who connected it when."""

    team_id: str
    api_key: SecretStr
    region: Region
    kind: KeyKind
    client_org: str | None  # a partner key's client organisation (x-auth-org)
    connected_by: str
    connected_at: float

    @property
    def last4(self) -> str:
        """The key's last 4 characters: all that is ever shown of it."""
        return self.api_key.get_secret_value()[-4:]

    @property
    def auth_scheme(self) -> str:
        """The x-auth-scheme its calls carry."""
        return AUTH_SCHEMES[self.kind]


class RhombusConnectionRow(Base):
    """One workspace's connection as stored: the key sealed, never in plain text."""

    __tablename__ = "rhombus_connections"

    team_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    sealed_key: Mapped[str] = mapped_column(Text)
    region: Mapped[str] = mapped_column(String(8))
    kind: Mapped[str] = mapped_column(String(16))
    client_org: Mapped[str | None] = mapped_column(String(32))
    connected_by: Mapped[str] = mapped_column(String(32))
    connected_at: Mapped[float] = mapped_column(Float)

    def __repr__(self) -> str:
        return f"RhombusConnectionRow(team={self.team_id!r}, region={self.region!r})"


class RhombusKeys:
    """Reads and writes the workspaces' Rhombus connections, sealing and opening their keys."""

    def __init__(self, store: Store, box: SecretBox) -> None:
        self._sessions = store.sessions
        self._box = box
        self._told: set[str] = set()  # teams whose unreadable key was already logged

    async def get(self, team_id: str) -> RhombusConnection | None:
        """The workspace's connection; None when it has none, or its key cannot be opened."""
        async with self._sessions() as session:
            row = await session.get(RhombusConnectionRow, team_id)
        return None if row is None else self._opened(row)

    async def all(self) -> list[RhombusConnection]:
        """Every workspace's connection that can be opened, by team id."""
        async with self._sessions() as session:
            rows = (
                await session.scalars(
                    select(RhombusConnectionRow).order_by(RhombusConnectionRow.team_id)
                )
            ).all()
        return [connection for row in rows if (connection := self._opened(row)) is not None]

    async def put(self, connection: RhombusConnection) -> None:
        """Store the workspace's connection, replacing any it had."""
        row = RhombusConnectionRow(
            team_id=connection.team_id,
            sealed_key=self._box.seal(connection.api_key.get_secret_value()),
            region=connection.region,
            kind=connection.kind,
            client_org=connection.client_org,
            connected_by=connection.connected_by,
            connected_at=connection.connected_at,
        )
        async with self._sessions.begin() as session:
            await session.merge(row)
        self._told.discard(connection.team_id)

    async def remove(self, team_id: str) -> bool:
        """Forget the workspace's connection; whether it had one."""
        query = delete(RhombusConnectionRow).where(RhombusConnectionRow.team_id == team_id)
        async with self._sessions.begin() as session:
            removed = (await session.execute(query)).rowcount  # type: ignore[attr-defined]
        self._told.discard(team_id)
        return bool(removed)

    async def reseal_all(self) -> int:
        """Seal every stored key with the newest of ENCRYPTION_KEYS; how many were resealed.

        Run after putting a new key in front of ENCRYPTION_KEYS: once done, the old key can go.
        A key none of them opens is left as it is (and logged once).
        """
        resealed = 0
        async with self._sessions.begin() as session:
            rows = (await session.scalars(select(RhombusConnectionRow))).all()
            for row in rows:
                try:
                    row.sealed_key = self._box.reseal(row.sealed_key)
                except SecretUnreadableError:
                    self._tell_unreadable(row.team_id)
                    continue
                resealed += 1
        return resealed

    def _opened(self, row: RhombusConnectionRow) -> RhombusConnection | None:
        try:
            key = self._box.open(row.sealed_key)
        except SecretUnreadableError:
            self._tell_unreadable(row.team_id)
            return None
        region, kind = row.region, row.kind
        if region not in REGIONS or kind not in KEY_KINDS:
            logger.error("workspace %s has a Rhombus connection of unknown kind", row.team_id)
            return None
        return RhombusConnection(
            team_id=row.team_id,
            api_key=SecretStr(key),
            region=region,
            kind=kind,
            client_org=row.client_org,
            connected_by=row.connected_by,
            connected_at=row.connected_at,
        )

    def _tell_unreadable(self, team_id: str) -> None:
        if team_id in self._told:
            return
        self._told.add(team_id)
        logger.error(
            "the Rhombus key of workspace %s opens with none of ENCRYPTION_KEYS (was the key "
            "that sealed it dropped?); the workspace counts as not connected until an admin "
            "connects Rhombus again",
            team_id,
            extra={"team": team_id},
        )
