"""Secrets at rest: workspace tokens and Rhombus keys sealed with Fernet before they are stored.

`ENCRYPTION_KEYS` lists Fernet keys, newest first. The newest seals; every one of them opens, so a
new key can be put in front, the stored secrets resealed (`reseal`), and the old key dropped,
without a moment in which a stored secret cannot be read.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

if TYPE_CHECKING:
    from collections.abc import Sequence


class SecretUnreadableError(Exception):
    """A stored secret none of the configured keys opens (a key was dropped too soon)."""


class SecretBox:
    """Seals and opens short secrets with the configured Fernet keys."""

    def __init__(self, keys: Sequence[str]) -> None:
        if not keys:
            raise ValueError("at least one Fernet key is needed")
        self._fernet = MultiFernet([Fernet(key) for key in keys])
        self._newest = Fernet(keys[0])

    @classmethod
    def from_setting(cls, value: str) -> SecretBox:
        """Build from `ENCRYPTION_KEYS`: Fernet keys separated by commas, newest first."""
        return cls(parse_keys(value))

    @staticmethod
    def new_key() -> str:
        """A fresh Fernet key, as `ENCRYPTION_KEYS` takes it."""
        return Fernet.generate_key().decode()

    def seal(self, secret: str) -> str:
        """The secret encrypted and authenticated with the newest key."""
        return self._fernet.encrypt(secret.encode()).decode()

    def open(self, sealed: str) -> str:
        """The secret `seal` sealed, with whichever configured key sealed it."""
        try:
            return self._fernet.decrypt(sealed.encode()).decode()
        except InvalidToken:
            raise SecretUnreadableError(
                "a stored secret opens with none of ENCRYPTION_KEYS"
            ) from None

    def is_current(self, sealed: str) -> bool:
        """Whether the newest key sealed it, so that resealing would change nothing."""
        try:
            self._newest.decrypt(sealed.encode())
        except InvalidToken:
            return False
        return True

    def reseal(self, sealed: str) -> str:
        """The same secret sealed with the newest key (for rotating `ENCRYPTION_KEYS`)."""
        try:
            return self._fernet.rotate(sealed.encode()).decode()
        except InvalidToken:
            raise SecretUnreadableError(
                "a stored secret opens with none of ENCRYPTION_KEYS"
            ) from None


def parse_keys(value: str) -> list[str]:
    """The Fernet keys in `value`, newest first; ValueError naming the position of a bad one."""
    keys = [part.strip() for part in value.split(",") if part.strip()]
    if not keys:
        raise ValueError("lists no key (generate one: python -m bot new-key)")
    for position, key in enumerate(keys, start=1):
        try:
            Fernet(key)
        except ValueError:
            raise ValueError(
                f"key {position} is not a Fernet key (32 url-safe base64-encoded bytes)"
            ) from None
    return keys
