"""Who asks the bot for something, where, and whether they may: the allow-lists."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Asker:
    """A person asking for something in a channel (in a thread, for the message shortcut)."""

    team_id: str
    channel_id: str
    user_id: str
    thread_ts: str | None = None


@dataclass(frozen=True)
class Policy:
    """What people may ask for, and where clips may be shown."""

    max_clips: int = 5
    post_restricted_clips: bool = False
    allowed_channels: frozenset[str] = frozenset()
    allowed_users: frozenset[str] = frozenset()
    creators: frozenset[str] = frozenset()  # who may make clips; empty: whoever may use /clip

    def refusal(self, asker: Asker) -> str | None:
        """Why the person may not use the bot there, or None when they may."""
        if self.allowed_channels and asker.channel_id not in self.allowed_channels:
            return (
                "Sorry, clips can't be followed in this channel. "
                "Ask your Slack admin which channels can."
            )
        if self.allowed_users and asker.user_id not in self.allowed_users:
            return (
                "Sorry, you're not on the list of people who can follow Rhombus clips. "
                "Ask your Slack admin."
            )
        return None

    def creation_refusal(self, asker: Asker) -> str | None:
        """Why the person may not make clips with `/clip new`, or None when they may."""
        if self.creators and asker.user_id not in self.creators:
            return (
                "Sorry, you're not on the list of people who can make Rhombus clips from Slack. "
                "Ask your Slack admin; you can still follow clips with `/clip <clip id>`."
            )
        return None
