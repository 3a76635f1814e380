"""Settings read from the environment."""

from __future__ import annotations

import os

import pytest

from bot.config import ConfigError, Settings

GOOD = {
    "SLACK_BOT_TOKEN": "xoxb-1-secret-bot-token",
    "SLACK_SIGNING_SECRET": "signing-secret-value",
    "RHOMBUS_API_KEY": "rhombus-secret-key",
}


PREFIXES = ("SLACK_", "RHOMBUS_", "DATABASE_", "POLL_", "PORT", "GIVE_UP", "ALLOWED_", "CLIP_")


@pytest.fixture
def env(monkeypatch):
    """Set environment variables on a clean slate."""
    for name in list(os.environ):
        if name.startswith(PREFIXES):
            monkeypatch.delenv(name)

    def set_env(values):
        for name, value in values.items():
            monkeypatch.setenv(name, value)

    return set_env


def test_every_missing_variable_in_one_message(env):
    """With nothing set, the error names each required variable and points at the demo."""
    env({})

    with pytest.raises(ConfigError) as raised:
        Settings.from_env(None)

    message = str(raised.value)
    assert "SLACK_BOT_TOKEN: not set" in message
    assert "RHOMBUS_API_KEY: not set" in message
    assert "SLACK_SIGNING_SECRET: not set" in message
    assert "make demo" in message


def test_malformed_values_are_named_together(env):
    """Several malformed values are reported in the same message."""
    env(
        GOOD
        | {
            "SLACK_APP_TOKEN": "not-an-app-token",
            "POLL_INTERVAL_SECONDS": "soon",
            "DATABASE_URL": "mysql://x/y",
            "RHOMBUS_AUTH_SCHEME": "password",
        }
    )

    with pytest.raises(ConfigError) as raised:
        Settings.from_env(None)

    message = str(raised.value)
    for name in ("SLACK_APP_TOKEN", "POLL_INTERVAL_SECONDS", "DATABASE_URL", "RHOMBUS_AUTH_SCHEME"):
        assert name in message


def test_http_mode_needs_signing_secret(env):
    """Without an app token the signing secret is required."""
    env({k: v for k, v in GOOD.items() if k != "SLACK_SIGNING_SECRET"})

    with pytest.raises(ConfigError, match="SLACK_SIGNING_SECRET"):
        Settings.from_env(None)


def test_defaults_and_derived_values(env):
    """Defaults match the README; the async driver is picked from DATABASE_URL."""
    env(GOOD | {"POLL_INTERVAL_SECONDS": "2.5"})

    settings = Settings.from_env(None)

    assert 2.5 == settings.poll_interval_seconds
    assert 3000 == settings.port
    assert "sqlite+aiosqlite:///rhombus-clip-bot.db" == settings.async_database_url
    assert "https://console.rhombussystems.com" == settings.console_url
    assert not settings.socket_mode


def test_postgres_and_eu(env):
    """A PostgreSQL URL gets asyncpg; an EU API URL gets the EU console."""
    env(
        GOOD
        | {
            "DATABASE_URL": "postgresql://bot:pw@db/bot",
            "RHOMBUS_API_URL": "https://api2.eu.rhombussystems.com",
            "SLACK_APP_TOKEN": "xapp-1-abc",
        }
    )

    settings = Settings.from_env(None)

    assert "postgresql+asyncpg://bot:pw@db/bot" == settings.async_database_url
    assert "https://console.eu.rhombussystems.com" == settings.console_url
    assert settings.socket_mode


def test_secrets_never_in_repr(env):
    """Tokens, keys and the database password stay out of repr."""
    env(GOOD | {"DATABASE_URL": "postgresql://bot:db-password@db/bot"})

    shown = repr(Settings.from_env(None))

    for secret in (*GOOD.values(), "db-password"):
        assert secret not in shown


def test_clip_creators_and_visibility(env):
    """CLIP_CREATORS is a list of user ids; CLIP_VISIBILITY one of Rhombus's, in any case."""
    env({**GOOD, "CLIP_CREATORS": "U1, U2", "CLIP_VISIBILITY": "private"})
    settings = Settings.from_env(env_file=None)
    assert (frozenset({"U1", "U2"}), "PRIVATE") == (
        settings.clip_creators,
        settings.clip_visibility,
    )
    env({"CLIP_CREATORS": "nope", "CLIP_VISIBILITY": "everyone"})
    with pytest.raises(ConfigError) as refused:
        Settings.from_env(env_file=None)
    assert ("CLIP_CREATORS", "CLIP_VISIBILITY") == tuple(
        name for name in ("CLIP_CREATORS", "CLIP_VISIBILITY") if name in str(refused.value)
    )


def test_allow_lists(env):
    """Allow-lists are comma-separated Slack ids; anything else is refused."""
    env(GOOD | {"ALLOWED_CHANNEL_IDS": "C01, C02", "ALLOWED_USER_IDS": "U1"})

    settings = Settings.from_env(None)

    assert frozenset({"C01", "C02"}) == settings.allowed_channel_ids
    assert frozenset({"U1"}) == settings.allowed_user_ids

    env({"ALLOWED_USER_IDS": "<@U1>"})
    with pytest.raises(ConfigError, match="ALLOWED_USER_IDS"):
        Settings.from_env(None)


def test_video_settings(env):
    """Video on by default, media from the key's region; the limits are checked."""
    env(GOOD | {"RHOMBUS_API_URL": "https://api2.eu.rhombussystems.com"})
    settings = Settings.from_env(None)
    assert (True, True, 200.0, 2) == (
        settings.deliver_video,
        settings.deliver_thumbnail,
        settings.video_max_mb,
        settings.delivery_concurrency,
    )
    assert "https://media.eu.rhombussystems.com" == settings.media_url

    env({"VIDEO_MAX_MB": "0", "DELIVERY_CONCURRENCY": "0", "RHOMBUS_MEDIA_URL": "ftp://x"})
    with pytest.raises(ConfigError) as raised:
        Settings.from_env(None)
    for name in ("VIDEO_MAX_MB", "DELIVERY_CONCURRENCY", "RHOMBUS_MEDIA_URL"):
        assert name in str(raised.value)
