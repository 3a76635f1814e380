"""The trackings table: every status message the bot follows, the one home of the bot's state."""

from __future__ import annotations

import uuid
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from sqlalchemy import (
    JSON,
    Boolean,
    Float,
    Index,
    String,
    TypeDecorator,
    bindparam,
    event,
    select,
    text,
    update,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from bot.clips import Ending

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from sqlalchemy import MetaData
    from sqlalchemy.engine.interfaces import DBAPIConnection, Dialect
    from sqlalchemy.pool import ConnectionPoolEntry


# The advisory lock that keeps replicas from creating the same table at once (PostgreSQL).
SCHEMA_LOCK = 0x636C6970  # "clip"


class StoreError(Exception):
    """The database cannot be opened or used; the message says which database and why."""


class DuplicateTrackingError(StoreError):
    """The clip is already followed in that channel."""


class TrackingState(StrEnum):
    """Where a tracking is in its life."""

    POSTING = "posting"  # row stored, status message not yet confirmed posted
    FOLLOWING = "following"  # message posted; polling Rhombus and editing it
    FINISHED = "finished"  # final state delivered (or the message is gone): nothing more to do


class _EndingColumn(TypeDecorator[Ending]):
    """An `Ending` stored as its value in a plain string column."""

    impl = String(16)
    cache_ok = True

    def process_bind_param(self, value: Ending | None, dialect: Dialect) -> str | None:  # noqa: ARG002
        return None if value is None else str(value)

    def process_result_value(self, value: str | None, dialect: Dialect) -> Ending | None:  # noqa: ARG002
        return None if value is None else Ending(value)


class Base(DeclarativeBase):
    """Declarative base of the bot's tables."""


class Tracking(Base):
    """One followed status message: where it is, what clip it shows, and what it showed last."""

    __tablename__ = "trackings"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    team_id: Mapped[str] = mapped_column(String(32))
    channel_id: Mapped[str] = mapped_column(String(32))
    message_ts: Mapped[str | None] = mapped_column(String(32))
    thread_ts: Mapped[str | None] = mapped_column(String(32))
    clip_id: Mapped[str] = mapped_column(String(32))
    requester_id: Mapped[str] = mapped_column(String(32))
    state: Mapped[str] = mapped_column(String(16), default=TrackingState.POSTING)
    ending: Mapped[Ending | None] = mapped_column(_EndingColumn)
    stopped_by: Mapped[str | None] = mapped_column(String(32))
    clip: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    percent: Mapped[int | None]
    notice: Mapped[str | None] = mapped_column(String(500))
    fingerprint: Mapped[str | None] = mapped_column(String(64))
    final_reply_sent: Mapped[bool] = mapped_column(Boolean, default=False)
    started_at: Mapped[float] = mapped_column(Float)
    changed_at: Mapped[float] = mapped_column(Float)
    progress_at: Mapped[float] = mapped_column(Float)
    reached_at: Mapped[float | None] = mapped_column(Float)
    finished_at: Mapped[float | None] = mapped_column(Float)

    __table_args__ = (
        # One live follower per clip and channel; the database enforces it, races included.
        Index(
            "uq_trackings_open_clip",
            "team_id",
            "channel_id",
            "clip_id",
            unique=True,
            sqlite_where=text("state != 'finished'"),
            postgresql_where=text("state != 'finished'"),
        ),
        Index("ix_trackings_state", "state"),
        Index("ix_trackings_message", "channel_id", "message_ts"),
    )

    @staticmethod
    def new_id() -> str:
        """A fresh tracking id."""
        return uuid.uuid4().hex

    @classmethod
    def posting(  # noqa: PLR0913
        cls,
        *,
        team_id: str,
        channel_id: str,
        thread_ts: str | None,
        clip_id: str,
        requester_id: str,
        clip: dict[str, Any],
        percent: int | None,
        now: float,
    ) -> Tracking:
        """A new tracking whose status message is about to be posted."""
        return cls(
            id=cls.new_id(),
            team_id=team_id,
            channel_id=channel_id,
            thread_ts=thread_ts,
            clip_id=clip_id,
            requester_id=requester_id,
            state=TrackingState.POSTING,
            clip=clip,
            percent=percent,
            final_reply_sent=False,
            started_at=now,
            changed_at=now,
            progress_at=now,
            reached_at=now,
        )

    @property
    def log_context(self) -> dict[str, str | None]:
        """Ids for every log line about the tracking (shown in text logs, fields in JSON)."""
        return {
            "tracking": self.id,
            "team": self.team_id,
            "channel": self.channel_id,
            "clip": self.clip_id,
        }

    def __repr__(self) -> str:
        return (
            f"Tracking(id={self.id!r}, team={self.team_id!r}, channel={self.channel_id!r}, "
            f"ts={self.message_ts!r}, clip={self.clip_id!r}, state={self.state!r})"
        )


class Store:
    """Reads and writes trackings through SQLAlchemy's async engine (aiosqlite or asyncpg)."""

    def __init__(self, url: str) -> None:
        try:
            self._url = make_url(url)
            self._engine = create_async_engine(self._url, pool_pre_ping=True)
        except (SQLAlchemyError, ValueError, TypeError) as error:
            shown = url.split("@", 1)[-1] if "@" in url else url  # never the password
            raise StoreError(f"cannot use the database {shown}: {error}") from error
        if self._url.get_backend_name() == "sqlite":
            event.listen(self._engine.sync_engine, "connect", _sqlite_pragmas)
        self._sessions = async_sessionmaker(self._engine, expire_on_commit=False)

    @property
    def engine(self) -> AsyncEngine:
        """The database's engine, for tables kept by libraries (Slack's installations)."""
        return self._engine

    @property
    def sessions(self) -> async_sessionmaker[AsyncSession]:
        """Sessions on the database, for the bot's other tables (`bot.delivery_rows`)."""
        return self._sessions

    @property
    def description(self) -> str:
        """The database URL with any password hidden, for messages and logs."""
        return self._url.render_as_string(hide_password=True)

    @property
    def sqlite_file(self) -> Path | None:
        """The SQLite database's file, or None (PostgreSQL, or SQLite in memory)."""
        database = self._url.database
        if database and database.startswith("file:") and "uri" in self._url.query:
            # An SQLite URI filename (sqlite:///file:/path.db?mode=ro&uri=true): its path.
            database = unquote(urlsplit(database).path)
        if self._url.get_backend_name() != "sqlite" or not database or database == ":memory:":
            return None
        return Path(database).expanduser().absolute()

    async def open(self) -> None:
        """Create the table if needed; StoreError saying why if the database is unusable."""
        if self.sqlite_file is not None:
            folder = self.sqlite_file.parent
            if not folder.is_dir():  # one stat at start-up, before serving
                raise StoreError(
                    f"cannot open the database {self.description}: "
                    f"the folder {folder} does not exist"
                )
        try:
            async with self._engine.begin() as connection:
                await _create_tables(connection, Base.metadata)
                # A write proves the file is writable and not locked by another process.
                await connection.execute(text("DELETE FROM trackings WHERE 1 = 0"))
        except (SQLAlchemyError, OSError) as error:
            raise StoreError(
                f"cannot open the database {self.description}: {_reason(error)}"
            ) from error

    async def close(self) -> None:
        """Close every connection."""
        await self._engine.dispose()

    async def ping(self) -> bool:
        """Whether the database answers a trivial query now."""
        try:
            async with self._engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
        except (SQLAlchemyError, OSError):
            return False
        return True

    async def add(self, tracking: Tracking) -> None:
        """Insert a new tracking; DuplicateTrackingError if the clip is already followed there."""
        try:
            async with self._sessions.begin() as session:
                session.add(tracking)
        except IntegrityError as error:
            raise DuplicateTrackingError(
                f"clip {tracking.clip_id} is already followed in {tracking.channel_id}"
            ) from error

    async def save(self, tracking: Tracking) -> None:
        """Write every field of the tracking, unless it was finished meanwhile elsewhere."""
        await self.save_many([tracking])

    async def save_many(self, trackings: Iterable[Tracking]) -> None:
        """Write every field of each tracking in one transaction; a finished row stays finished."""
        live: list[dict[str, Any]] = []
        finished: list[dict[str, Any]] = []
        for tracking in trackings:
            values = {f"new_{column.key}": getattr(tracking, column.key) for column in _COLUMNS}
            values["tracking_id"] = tracking.id
            (finished if tracking.state == TrackingState.FINISHED else live).append(values)
        if not live and not finished:
            return
        try:
            async with self._engine.begin() as connection:
                if live:
                    # E.g. the workspace's install went away during this poll: stay finished.
                    await connection.execute(_UPDATE_UNLESS_FINISHED, live)
                if finished:
                    await connection.execute(_UPDATE, finished)
        except (SQLAlchemyError, OSError) as error:
            raise StoreError(f"cannot write to {self.description}: {_reason(error)}") from error

    async def reopen(self, tracking: Tracking) -> bool:
        """Write a finished tracking that follows again; False if its clip is followed there."""
        values = {f"new_{column.key}": getattr(tracking, column.key) for column in _COLUMNS}
        values["tracking_id"] = tracking.id
        try:
            async with self._engine.begin() as connection:
                await connection.execute(_UPDATE, [values])
        except IntegrityError:
            return False
        return True

    async def get(self, tracking_id: str) -> Tracking | None:
        """The tracking with that id, if any."""
        async with self._sessions() as session:
            return await session.get(Tracking, tracking_id)

    async def notify(self, channel: str, payload: str, *, tracking: Tracking | None = None) -> None:
        """NOTIFY `channel` (PostgreSQL) in one transaction with writing `tracking`, if given.

        A listener is told only once the transaction commits, so it always finds the row.
        """
        try:
            async with self._engine.begin() as connection:
                if tracking is not None:
                    values = {f"new_{c.key}": getattr(tracking, c.key) for c in _COLUMNS}
                    await connection.execute(
                        _UPDATE_UNLESS_FINISHED, [{**values, "tracking_id": tracking.id}]
                    )
                await connection.execute(
                    text("SELECT pg_notify(:channel, :payload)"),
                    {"channel": channel, "payload": payload},
                )
        except (SQLAlchemyError, OSError) as error:
            raise StoreError(f"cannot write to {self.description}: {_reason(error)}") from error

    async def delete(self, tracking_id: str) -> None:
        """Forget a tracking (its status message was never posted)."""
        async with self._sessions.begin() as session:
            found = await session.get(Tracking, tracking_id)
            if found is not None:
                await session.delete(found)

    async def find_open(self, team_id: str, channel_id: str, clip_id: str) -> Tracking | None:
        """The unfinished tracking of that clip in that channel, if any."""
        query = select(Tracking).where(
            Tracking.team_id == team_id,
            Tracking.channel_id == channel_id,
            Tracking.clip_id == clip_id,
            Tracking.state != TrackingState.FINISHED,
        )
        async with self._sessions() as session:
            return (await session.scalars(query)).first()

    async def find_by_message(self, channel_id: str, message_ts: str) -> Tracking | None:
        """The tracking whose status message is that one, if any (newest first)."""
        query = (
            select(Tracking)
            .where(Tracking.channel_id == channel_id, Tracking.message_ts == message_ts)
            .order_by(Tracking.started_at.desc())
        )
        async with self._sessions() as session:
            return (await session.scalars(query)).first()

    async def open_in_channel(self, team_id: str, channel_id: str) -> Sequence[Tracking]:
        """Every unfinished tracking of a channel, oldest first."""
        query = (
            select(Tracking)
            .where(
                Tracking.team_id == team_id,
                Tracking.channel_id == channel_id,
                Tracking.state != TrackingState.FINISHED,
            )
            .order_by(Tracking.started_at)
        )
        async with self._sessions() as session:
            return (await session.scalars(query)).all()

    async def of_requester(
        self, team_id: str, user_id: str, *, finished_since: float
    ) -> Sequence[Tracking]:
        """A person's trackings: the unfinished ones and those finished since then; newest first."""
        query = (
            select(Tracking)
            .where(
                Tracking.team_id == team_id,
                Tracking.requester_id == user_id,
                (Tracking.state != TrackingState.FINISHED)
                | (Tracking.finished_at >= finished_since),
            )
            .order_by(Tracking.started_at.desc())
        )
        async with self._sessions() as session:
            return (await session.scalars(query)).all()

    async def unfinished(self, team_id: str | None = None) -> Sequence[Tracking]:
        """Every tracking that still has work to do (of one workspace, if given), oldest first."""
        query = (
            select(Tracking)
            .where(Tracking.state != TrackingState.FINISHED)
            .order_by(Tracking.started_at)
        )
        if team_id is not None:
            query = query.where(Tracking.team_id == team_id)
        async with self._sessions() as session:
            return (await session.scalars(query)).all()

    async def finish_team(self, team_id: str, ending: Ending, now: float) -> list[str]:
        """Finish every unfinished tracking of a workspace; the ids that were finished."""
        async with self._sessions.begin() as session:
            ids = list(
                await session.scalars(
                    select(Tracking.id).where(
                        Tracking.team_id == team_id, Tracking.state != TrackingState.FINISHED
                    )
                )
            )
            await session.execute(
                update(Tracking)
                .where(Tracking.id.in_(ids))
                .values(state=TrackingState.FINISHED, ending=ending, finished_at=now)
            )
        return ids


_COLUMNS = tuple(column for column in Tracking.__table__.columns if column.key != "id")
# Built once: the bot writes rows all the time, and building a statement costs more than sending it.
_UPDATE = (
    update(Tracking)
    .where(Tracking.id == bindparam("tracking_id"))
    .values({column.key: bindparam(f"new_{column.key}") for column in _COLUMNS})
)
_UPDATE_UNLESS_FINISHED = _UPDATE.where(Tracking.state != TrackingState.FINISHED)


async def create_tables(engine: AsyncEngine, *metadata: MetaData) -> None:
    """Create these tables where missing (`bot.installations`' own), one replica at a time."""
    async with engine.begin() as connection:
        for tables in metadata:
            await _create_tables(connection, tables)


async def _create_tables(connection: AsyncConnection, metadata: MetaData) -> None:
    """Create the tables where missing; on PostgreSQL one replica at a time.

    Replicas starting together on a new database would otherwise both try to create a table,
    and one of them fail on PostgreSQL's catalogue.
    """
    if connection.dialect.name == "postgresql":
        await connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": SCHEMA_LOCK})
    await connection.run_sync(metadata.create_all)


def _sqlite_pragmas(connection: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
    cursor = connection.cursor()
    # WAL lets /healthz read while a poll writes; the busy timeout rides out short locks.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _reason(error: BaseException) -> str:
    original = getattr(error, "orig", None) or error
    return str(original).splitlines()[0] if str(original) else type(original).__name__
