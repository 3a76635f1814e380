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
