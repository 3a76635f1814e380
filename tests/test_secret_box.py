"""Sealing secrets at rest, and rotating ENCRYPTION_KEYS without losing any."""

from __future__ import annotations

import pytest

from bot.secret_box import SecretBox, SecretUnreadableError, parse_keys


def test_a_sealed_secret_opens_and_does_not_show_the_secret() -> None:
    """What is stored is not the secret, and opens to it."""
    box = SecretBox([SecretBox.new_key()])
    sealed = box.seal("xoxb-1-secret-token")
    assert "xoxb" not in sealed
    assert box.open(sealed) == "xoxb-1-secret-token"


def test_rotation_opens_old_secrets_and_reseals_with_the_newest_key() -> None:
    """A new key in front still opens what the old one sealed; resealed, the old key can go."""
    old, new = SecretBox.new_key(), SecretBox.new_key()
    sealed_by_old = SecretBox([old]).seal("rhombus-key")
    both = SecretBox([new, old])
    assert both.open(sealed_by_old) == "rhombus-key"
    resealed = both.reseal(sealed_by_old)
    assert SecretBox([new]).open(resealed) == "rhombus-key"
    with pytest.raises(SecretUnreadableError):
        SecretBox([new]).open(sealed_by_old)


def test_a_secret_sealed_by_an_unknown_key_is_a_named_error() -> None:
    """Garbage or a dropped key: SecretUnreadableError, never the secret or a crash."""
    box = SecretBox([SecretBox.new_key()])
    with pytest.raises(SecretUnreadableError):
        box.open("not a fernet token")
    with pytest.raises(SecretUnreadableError):
        box.reseal(SecretBox([SecretBox.new_key()]).seal("x"))


@pytest.mark.parametrize(
    ("value", "problem"),
    [("", "lists no key"), (" , ", "lists no key"), ("short", "key 1 is not a Fernet key")],
)
def test_bad_encryption_keys_are_named(value: str, problem: str) -> None:
    """ENCRYPTION_KEYS that cannot work say which key is wrong."""
    with pytest.raises(ValueError, match=problem):
        parse_keys(value)


def test_keys_are_read_newest_first_from_the_setting() -> None:
    """The first key of the setting seals."""
    new, old = SecretBox.new_key(), SecretBox.new_key()
    sealed = SecretBox.from_setting(f" {new} , {old} ").seal("s")
    assert SecretBox([new]).open(sealed) == "s"
    assert parse_keys(f"{new},{old}") == [new, old]


def test_is_current_tells_what_the_newest_key_sealed() -> None:
    """Only a secret sealed by the newest key is current; resealing makes it so."""
    old, new = SecretBox.new_key(), SecretBox.new_key()
    both = SecretBox([new, old])
    sealed_by_old = SecretBox([old]).seal("xoxb-1")
    assert (False, True, True) == (
        both.is_current(sealed_by_old),
        both.is_current(both.reseal(sealed_by_old)),
        both.is_current(both.seal("xoxb-2")),
    )
    assert not both.is_current("not a sealed secret")
