"""Which workspaces this process follows, and the notices that hand work to their holder.

With several replicas on one PostgreSQL database each workspace's clips are followed by exactly
one of them (`bot.shards`); any replica may take a `/clip`, a Refresh or a Stop. It writes the
row and sends a notice in the same transaction, and the holder acts on it. A notice only wakes
the holder up: it reads the row again, and rescans its workspaces now and then, so a notice
sent while nobody listened is not missed for long.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Protocol

# The PostgreSQL NOTIFY channel the notices go through.
CHANNEL = "clipbot_trackings"


class Notice(StrEnum):
    """What the holder is asked to do with a tracking."""

    FOLLOW = "follow"  # start polling it (its message was posted elsewhere)
    REFRESH = "refresh"  # poll now
    STOP = "stop"  # show it stopped (the row says by whom)


def notice(kind: Notice, tracking_id: str) -> str:
    """The NOTIFY payload asking for `kind` on that tracking."""
    return f"{kind}:{tracking_id}"


def read_notice(payload: str) -> tuple[Notice, str] | None:
    """What a NOTIFY payload asks for, or None when it is not one of ours."""
    kind, _, tracking_id = payload.partition(":")
    if kind not in Notice.__members__.values() or not tracking_id:
        return None
    return Notice(kind), tracking_id


class Holder(Protocol):
    """Knows whether this process follows a workspace's clips now."""

    def holds(self, team_id: str) -> bool:
        """Whether this process follows that workspace's clips now."""
        ...


class Everything:
    """One process follows every workspace: SQLite, or no replicas."""

    def holds(self, team_id: str) -> bool:  # noqa: ARG002
        """Always."""
        return True
