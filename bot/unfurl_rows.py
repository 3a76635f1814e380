"""The unfurls table: the Rhombus clip links in messages whose unfurl is kept up to date.

A table of its own: `create_all` adds a new table to an existing database, never a column.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import Boolean, Float, Index, String, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Mapped, mapped_column

from bot.store import Base, StoreError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from bot.store import Store


class LinkUnfurl(Base):
    """A Rhombus clip link in a message whose unfurl the bot keeps up to date until it is final."""

    __tablename__ = "unfurls"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    team_id: Mapped[str] = mapped_column(String(32))
    channel_id: Mapped[str] = mapped_column(String(32))
    message_ts: Mapped[str] = mapped_column(String(32))
    url: Mapped[str] = mapped_column(String(3000))
    clip_id: Mapped[str] = mapped_column(String(32))
    fingerprint: Mapped[str | None] = mapped_column(String(64))
    changed_at: Mapped[float] = mapped_column(Float)
    finished: Mapped[bool] = mapped_column(Boolean, default=False)

    __table_args__ = (Index("ix_unfurls_finished", "finished"),)

    @property
    def log_context(self) -> dict[str, str | None]:
        """Ids for every log line about the unfurl."""
        return {"unfurl": self.id, "team": self.team_id, "channel": self.channel_id}


class UnfurlRows:
    """Reads and writes the unfurls kept up to date, on the bot's database."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def save(self, unfurl: LinkUnfurl) -> None:
        """Insert or update an unfurl kept up to date."""
        try:
            async with self._store.sessions.begin() as session:
                await session.merge(unfurl)
        except (SQLAlchemyError, OSError) as error:
            raise StoreError(f"cannot write to {self._store.description}: {error}") from error

    async def get(self, unfurl_id: str) -> LinkUnfurl | None:
        """One unfurl, if it is stored."""
        async with self._store.sessions() as session:
            return await session.get(LinkUnfurl, unfurl_id)

    async def find(self, channel_id: str, message_ts: str, url: str) -> bool:
        """Whether that link of that message is kept up to date already."""
        query = select(LinkUnfurl.id).where(
            LinkUnfurl.channel_id == channel_id,
            LinkUnfurl.message_ts == message_ts,
            LinkUnfurl.url == url,
            LinkUnfurl.finished.is_(False),
        )
        async with self._store.sessions() as session:
            return (await session.scalars(query)).first() is not None

    async def live(self) -> Sequence[LinkUnfurl]:
        """Every unfurl still kept up to date."""
        query = select(LinkUnfurl).where(LinkUnfurl.finished.is_(False))
        async with self._store.sessions() as session:
            return (await session.scalars(query)).all()
