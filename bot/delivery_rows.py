"""The deliveries table: how far each finished clip's video (or its text reply) has got.

A table of its own, keyed by the tracking: `create_all` adds a new table to an existing
database, never a column to an existing one. Each row is written before the step it names is
taken, so a restart knows what may already be visible in Slack.
"""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, Any

from sqlalchemy import JSON, Float, Index, String, Text, select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Mapped, mapped_column

from bot.deliverable import byte_count, region, sha256
from bot.store import Base, StoreError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from bot.blocks import RenderedMessage
    from bot.clips import Clip
    from bot.store import Store, Tracking


class DeliveryState(StrEnum):
    """Where a delivery is; each state is recorded before what it names is done."""

    PENDING = "pending"  # nothing of it is in Slack yet: start from the download
    UPLOADING = "uploading"  # Slack gave a file id; never shared (Slack drops it unless completed)
    SHARING = "sharing"  # completeUploadExternal may have been called: confirm before repeating
    REPLYING = "replying"  # the text reply (with `reason`) may have been posted: look first
    DELIVERED = "delivered"  # the video is in the thread
    REPLIED = "replied"  # the text reply is in the thread

    @property
    def is_done(self) -> bool:
        """Whether nothing is left to do."""
        return self in {DeliveryState.DELIVERED, DeliveryState.REPLIED}


class Delivery(Base):
    """The finished clip of one tracking, on its way into the status message's thread."""

    __tablename__ = "deliveries"

    tracking_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    team_id: Mapped[str] = mapped_column(String(32))
    channel_id: Mapped[str] = mapped_column(String(32))
    message_ts: Mapped[str] = mapped_column(String(32))  # the status message
    thread_ts: Mapped[str] = mapped_column(String(32))  # its thread's parent
    clip_id: Mapped[str] = mapped_column(String(32))
    region: Mapped[str | None] = mapped_column(String(64))
    byte_count: Mapped[int | None]
    sha256: Mapped[str | None] = mapped_column(String(64))
    title: Mapped[str] = mapped_column(String(300))
    reply_text: Mapped[str] = mapped_column(Text)
    reply_blocks: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    # The final status message, shown again with the thumbnail once it is in Slack.
    status_text: Mapped[str] = mapped_column(Text)
    status_blocks: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    thumbnail_id: Mapped[str | None] = mapped_column(String(32))
    state: Mapped[str] = mapped_column(String(16), default=DeliveryState.PENDING)
    file_id: Mapped[str | None] = mapped_column(String(32))
    reason: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[float] = mapped_column(Float)

    __table_args__ = (Index("ix_deliveries_state", "state"),)

    @classmethod
    def of(  # noqa: PLR0913
        cls,
        tracking: Tracking,
        clip: Clip | None,
        reply: RenderedMessage,
        status: RenderedMessage,
        *,
        reason: str | None,
        now: float,
    ) -> Delivery:
        """The delivery of a tracking's ready clip: `reply` announces it, `status` is its message.

        `reason`: why there will be no video (None: there will be one).
        """
        return cls(
            tracking_id=tracking.id,
            team_id=tracking.team_id,
            channel_id=tracking.channel_id,
            message_ts=tracking.message_ts or "",
            # Replies go under the thread's parent (a status message may itself be in a thread).
            thread_ts=tracking.thread_ts or tracking.message_ts or "",
            clip_id=tracking.clip_id,
            region=region(clip),
            byte_count=byte_count(clip),
            sha256=sha256(clip),
            title=((clip.title if clip is not None else None) or tracking.clip_id)[:300],
            reply_text=reply.text,
            reply_blocks=reply.blocks,
            status_text=status.text,
            status_blocks=status.blocks,
            state=DeliveryState.PENDING,
            reason=reason,
            created_at=now,
            updated_at=now,
        )

    @property
    def log_context(self) -> dict[str, str | None]:
        """Ids for every log line about the delivery, as for its tracking."""
        return {
            "tracking": self.tracking_id,
            "team": self.team_id,
            "channel": self.channel_id,
            "clip": self.clip_id,
        }

    def __repr__(self) -> str:
        return (
            f"Delivery(tracking={self.tracking_id!r}, clip={self.clip_id!r}, "
            f"state={self.state!r}, file={self.file_id!r})"
        )


class DeliveryRows:
    """Reads and writes deliveries in the bot's database."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def add(self, delivery: Delivery) -> bool:
        """Insert a new delivery; False when the tracking already has one (a repeated finish)."""
        try:
            async with self._store.sessions.begin() as session:
                session.add(delivery)
        except IntegrityError:
            return False
        except (SQLAlchemyError, OSError) as error:
            raise StoreError(f"cannot write to {self._store.description}: {error}") from error
        return True

    async def save(self, delivery: Delivery) -> None:
        """Write every field of the delivery."""
        try:
            async with self._store.sessions.begin() as session:
                await session.merge(delivery)
        except (SQLAlchemyError, OSError) as error:
            raise StoreError(f"cannot write to {self._store.description}: {error}") from error

    async def get(self, tracking_id: str) -> Delivery | None:
        """The delivery of a tracking, if it has one."""
        async with self._store.sessions() as session:
            return await session.get(Delivery, tracking_id)

    async def unfinished(self) -> Sequence[Delivery]:
        """Every delivery with something left to do, oldest first."""
        done = [str(state) for state in DeliveryState if state.is_done]
        query = select(Delivery).where(Delivery.state.not_in(done)).order_by(Delivery.created_at)
        async with self._store.sessions() as session:
            return (await session.scalars(query)).all()
