"""The `made_clips` table: every clip asked for with `/clip new`, from the splice to its post.

A row is written before Rhombus is asked to splice, so a crash at any moment leaves a trace: a
restart follows a clip that was made but not posted, and tells the person when it cannot know
whether the clip was made. The rows also say, for each status message, that its clip was made
from Slack, by whom, from which camera and footage.
"""

from __future__ import annotations

import uuid
from enum import StrEnum
from typing import TYPE_CHECKING

from sqlalchemy import JSON, BigInteger, Float, Integer, String, select
from sqlalchemy.orm import Mapped, mapped_column

from bot.status_message import MadeFromSlack
from bot.store import Base, Tracking

if TYPE_CHECKING:
    from collections.abc import Collection, Sequence

    from bot.store import Store


# Clip ids per query when looking up many: well under every database's limit of parameters.
_IN_CHUNK = 500


class MadeState(StrEnum):
    """Where a made clip is in its life."""

    SPLICING = "splicing"  # Rhombus is being asked; the clip's id is not known yet
    SPLICED = "spliced"  # Rhombus made it; its status message is not known to be posted
    POSTED = "posted"  # handed to the tracker (posted, or the person was told why not)
    TOLD = "told"  # a crash left it unknown whether it was made; the person was told


class MadeClip(Base):
    """One clip asked for from Slack."""

    __tablename__ = "made_clips"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    team_id: Mapped[str] = mapped_column(String(32))
    channel_id: Mapped[str] = mapped_column(String(32))
    creator_id: Mapped[str] = mapped_column(String(32))
    camera_id: Mapped[str] = mapped_column(String(32))
    camera_name: Mapped[str] = mapped_column(String(200))
    title: Mapped[str] = mapped_column(String(300))
    start_ms: Mapped[int] = mapped_column(BigInteger)
    duration_sec: Mapped[int] = mapped_column(Integer)
    missing: Mapped[list[list[int]] | None] = mapped_column(JSON)
    clip_id: Mapped[str | None] = mapped_column(String(32), index=True)
    state: Mapped[str] = mapped_column(String(16))
    made_at: Mapped[float] = mapped_column(Float)

    @staticmethod
    def new_id() -> str:
        """A fresh id."""
        return uuid.uuid4().hex

    @property
    def shown(self) -> MadeFromSlack:
        """What its status message says of it."""
        return MadeFromSlack(
            creator=self.creator_id,
            camera=self.camera_name,
            start=self.start_ms // 1000,
            duration_sec=self.duration_sec,
            made_at=self.made_at,
            missing=tuple((int(a), int(b)) for a, b in self.missing or ()),
        )

    @property
    def log_context(self) -> dict[str, str | None]:
        """Ids for log lines about it."""
        return {"team": self.team_id, "channel": self.channel_id, "clip": self.clip_id}


class MadeThread(Base):
    """The thread a made clip's status message goes in (**Follow a clip of this**).

    A table of its own: `create_all` adds a new table to an existing database, never a column.
    """

    __tablename__ = "made_threads"

    made_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    thread_ts: Mapped[str] = mapped_column(String(32))


class MadeClips:
    """Reads and writes `made_clips` on the bot's database."""

    def __init__(self, store: Store) -> None:
        self._sessions = store.sessions

    async def add(self, made: MadeClip, thread_ts: str | None = None) -> None:
        """Insert a new row, and the thread its status message goes in, if any."""
        async with self._sessions.begin() as session:
            session.add(made)
            if thread_ts is not None:
                session.add(MadeThread(made_id=made.id, thread_ts=thread_ts))

    async def thread_of(self, made: MadeClip) -> str | None:
        """The thread the clip's status message goes in; None: the channel itself."""
        async with self._sessions() as session:
            row = await session.get(MadeThread, made.id)
        return row.thread_ts if row is not None else None

    async def save(self, made: MadeClip) -> None:
        """Write every field of a row."""
        async with self._sessions.begin() as session:
            await session.merge(made)

    async def all_made(self) -> Sequence[MadeClip]:
        """Every row whose clip Rhombus made."""
        query = select(MadeClip).where(MadeClip.clip_id.is_not(None))
        async with self._sessions() as session:
            return (await session.scalars(query)).all()

    async def made_of(self, clip_ids: Collection[str]) -> list[MadeClip]:
        """The rows of those clips, if they were made from Slack."""
        wanted = sorted(set(clip_ids))
        found: list[MadeClip] = []
        async with self._sessions() as session:
            for start in range(0, len(wanted), _IN_CHUNK):
                query = select(MadeClip).where(
                    MadeClip.clip_id.in_(wanted[start : start + _IN_CHUNK])
                )
                found.extend((await session.scalars(query)).all())
        return found

    async def unsettled(self) -> Sequence[MadeClip]:
        """Rows a crash left between asking Rhombus and posting, oldest first."""
        query = (
            select(MadeClip)
            .where(MadeClip.state.in_([MadeState.SPLICING, MadeState.SPLICED]))
            .order_by(MadeClip.made_at)
        )
        async with self._sessions() as session:
            return (await session.scalars(query)).all()

    async def tracked(self, made: MadeClip) -> bool:
        """Whether a status message of the clip exists (or is being posted) in its channel."""
        query = select(Tracking.id).where(
            Tracking.team_id == made.team_id,
            Tracking.channel_id == made.channel_id,
            Tracking.clip_id == made.clip_id,
        )
        async with self._sessions() as session:
            return (await session.scalars(query)).first() is not None
