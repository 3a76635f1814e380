"""Settings read from the environment."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import TYPE_CHECKING

import pytest
from cryptography.fernet import Fernet

from bot.config import ConfigError, RegionUrls, Settings
from tests.helpers import base_env

if TYPE_CHECKING:
    from pydantic import SecretStr

GOOD = {
    "SLACK_BOT_TOKEN": "xoxb-1-secret-bot-token",
    "SLACK_SIGNING_SECRET": "signing-secret-value",
    "RHOMBUS_API_KEY": "rhombus-secret-key",
}


KEY = Fernet.generate_key().decode()
MANY = {
    "SLACK_CLIENT_ID": "1234567890.0987654321",
    "SLACK_CLIENT_SECRET": "client-secret-value",
    "SLACK_SIGNING_SECRET": "signing-secret-value",
    "PUBLIC_URL": "https://clips.example.com/",
    "ENCRYPTION_KEYS": KEY,
}


def _secret(value: SecretStr | None) -> str:
    assert value is not None
    return value.get_secret_value()


PREFIXES = (
    "SLACK_",
    "RHOMBUS_",
    "DATABASE_",
    "POLL_",
    "PORT",
    "GIVE_UP",
    "ALLOWED_",
    "CLIP_",
    "PUBLIC_URL",
    "ENCRYPTION_KEYS",
)


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
    # Both ways to run are named: one workspace, or many.
    assert "One workspace needs SLACK_BOT_TOKEN and RHOMBUS_API_KEY" in message
    assert "many workspaces need SLACK_CLIENT_ID, SLACK_CLIENT_SECRET" in message
    for name in ("PUBLIC_URL", "ENCRYPTION_KEYS"):
        assert f"{name}: " not in message  # mentioned as the other way, not as missing


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


def test_single_workspace_is_the_default(env):
    """Without a client id the bot serves one workspace: no PUBLIC_URL or keys needed."""
    env(GOOD)

    settings = Settings.from_env(None)

    assert (False, None, None, None) == (
        settings.distributed,
        settings.slack_client_id,
        settings.public_url,
        settings.encryption_keys,
    )
    assert "xoxb-1-secret-bot-token" == _secret(settings.slack_bot_token)
    assert not settings.slack_token_rotation


def test_many_workspaces(env):
    """Client id and secret turn distribution on: no bot token or Rhombus key is needed."""
    env(MANY | {"SLACK_TOKEN_ROTATION": "true", "SLACK_APP_TOKEN": "xapp-1-abc"})

    settings = Settings.from_env(None)

    assert settings.distributed
    assert settings.slack_token_rotation
    assert (None, None) == (settings.slack_bot_token, settings.rhombus_api_key)
    assert "https://clips.example.com" == settings.public_url
    assert "https://clips.example.com/slack/oauth_redirect" == settings.oauth_redirect_url
    assert KEY == _secret(settings.encryption_keys)
    assert "https://slack.com/oauth/v2/authorize" == settings.slack_authorize_url
    assert settings.socket_mode  # Socket Mode for events; the OAuth routes still over HTTP
    env({"SLACK_API_URL": "http://127.0.0.1:4321/api/"})
    assert "http://127.0.0.1:4321/oauth/v2/authorize" == Settings.from_env(None).slack_authorize_url


def test_many_workspaces_name_what_they_still_need(env):
    """Distribution names its own needs: the signing secret, PUBLIC_URL and ENCRYPTION_KEYS."""
    env({"SLACK_CLIENT_ID": MANY["SLACK_CLIENT_ID"], "SLACK_CLIENT_SECRET": "s"})

    with pytest.raises(ConfigError) as raised:
        Settings.from_env(None)

    message = str(raised.value)
    for name in ("SLACK_SIGNING_SECRET", "PUBLIC_URL", "ENCRYPTION_KEYS"):
        assert f"{name}: not set" in message
    for name in ("SLACK_BOT_TOKEN", "RHOMBUS_API_KEY"):
        assert f"{name}: " not in message
    assert "python -m bot new-key" in message


def test_the_signing_secret_is_needed_with_socket_mode_too(env):
    """Installs come back over HTTP, so distribution needs the signing secret in Socket Mode."""
    env(
        {k: v for k, v in MANY.items() if k != "SLACK_SIGNING_SECRET"}
        | {"SLACK_APP_TOKEN": "xapp-1-abc"}
    )

    with pytest.raises(ConfigError, match="SLACK_SIGNING_SECRET: not set"):
        Settings.from_env(None)


@pytest.mark.parametrize(
    ("alone", "other"),
    [("SLACK_CLIENT_ID", "SLACK_CLIENT_ID"), ("SLACK_CLIENT_SECRET", "SLACK_CLIENT_ID")],
)
def test_client_id_and_secret_go_together(env, alone, other):
    """Setting only one of the client id and secret is an error naming the other."""
    env({k: v for k, v in MANY.items() if k in {alone, "SLACK_SIGNING_SECRET"}})

    with pytest.raises(ConfigError) as raised:
        Settings.from_env(None)

    (line,) = [line for line in str(raised.value).splitlines() if "SLACK_CLIENT_SECRET:" in line]
    assert other in line
    # Distribution was meant: the single workspace's variables are not asked for.
    assert "SLACK_BOT_TOKEN: not set" not in str(raised.value)


def test_many_workspaces_refuse_the_single_workspace_credentials(env):
    """A bot token or Rhombus key beside a client id is refused: one mode at a time."""
    env(MANY | GOOD)

    with pytest.raises(ConfigError) as raised:
        Settings.from_env(None)

    message = str(raised.value)
    assert "SLACK_BOT_TOKEN: set, but with SLACK_CLIENT_ID" in message
    assert "RHOMBUS_API_KEY: set, but with SLACK_CLIENT_ID" in message
    for secret in GOOD.values():
        assert secret not in message


@pytest.mark.parametrize(
    ("public_url", "accepted"),
    [
        ("https://clips.example.com", "https://clips.example.com"),
        ("https://example.com/clipbot/", "https://example.com/clipbot"),
        ("http://127.0.0.1:3000", "http://127.0.0.1:3000"),
        ("http://localhost:8000/", "http://localhost:8000"),
        ("http://clips.example.com", None),
        ("ftp://clips.example.com", None),
        ("https://clips.example.com/?next=evil", None),
        ("https://user:pw@clips.example.com", None),
        ("clips.example.com", None),
    ],
)
def test_public_url(env, public_url, accepted):
    """PUBLIC_URL is https, http only on this machine, and nothing but an address."""
    env(MANY | {"PUBLIC_URL": public_url})

    if accepted is None:
        with pytest.raises(ConfigError, match="PUBLIC_URL: must be"):
            Settings.from_env(None)
    else:
        assert accepted == Settings.from_env(None).public_url


def test_encryption_keys_are_checked_without_showing_them(env):
    """A malformed key is named by its position; no key is ever shown."""
    env(MANY | {"ENCRYPTION_KEYS": f"{KEY}, not-a-fernet-key"})

    with pytest.raises(ConfigError) as raised:
        Settings.from_env(None)

    message = str(raised.value)
    assert "ENCRYPTION_KEYS: key 2 is not a Fernet key" in message
    assert KEY not in message
    assert "not-a-fernet-key" not in message


def test_secrets_of_many_workspaces_never_in_repr(env):
    """The client secret and the encryption keys stay out of repr."""
    env(MANY | {"ENCRYPTION_KEYS": f"{KEY},{Fernet.generate_key().decode()}"})

    shown = repr(Settings.from_env(None))

    assert "client-secret-value" not in shown
    for key in _secret(Settings.from_env(None).encryption_keys).split(","):
        assert key not in shown


def test_regions(env):
    """Each Rhombus region has its addresses: the US ones as today, the EU ones settable."""
    env(GOOD)
    settings = Settings.from_env(None)
    assert RegionUrls(
        "https://api2.rhombussystems.com",
        "https://media.rhombussystems.com",
        "https://console.rhombussystems.com",
    ) == settings.region("US")
    assert RegionUrls(
        "https://api2.eu.rhombussystems.com",
        "https://media.eu.rhombussystems.com",
        "https://console.eu.rhombussystems.com",
    ) == settings.region("EU")

    env(
        {
            "RHOMBUS_API_URL": "http://127.0.0.1:8081",
            "RHOMBUS_MEDIA_URL": "http://127.0.0.1:8081/",
            "RHOMBUS_EU_API_URL": "http://127.0.0.1:8082",
            "RHOMBUS_EU_MEDIA_URL": "http://127.0.0.1:8082/",
            "RHOMBUS_EU_CONSOLE_URL": "http://127.0.0.1:8082/console/",
        }
    )
    settings = Settings.from_env(None)
    assert RegionUrls(
        "http://127.0.0.1:8081", "http://127.0.0.1:8081", "https://console.rhombussystems.com"
    ) == settings.region("US")
    assert RegionUrls(
        "http://127.0.0.1:8082", "http://127.0.0.1:8082", "http://127.0.0.1:8082/console"
    ) == settings.region("EU")

    env({"RHOMBUS_EU_API_URL": "api2.eu", "RHOMBUS_EU_MEDIA_URL": "ftp://x"})
    with pytest.raises(ConfigError) as raised:
        Settings.from_env(None)
    for name in ("RHOMBUS_EU_API_URL", "RHOMBUS_EU_MEDIA_URL"):
        assert name in str(raised.value)


def test_new_key_prints_a_key_encryption_keys_takes(env, tmp_path):
    """`python -m bot new-key` prints a fresh Fernet key that ENCRYPTION_KEYS accepts."""
    done = subprocess.run(
        [sys.executable, "-m", "bot", "new-key"],
        env=base_env(),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )

    key = done.stdout.strip()
    assert 44 == len(key)
    env(MANY | {"ENCRYPTION_KEYS": key})
    assert key == _secret(Settings.from_env(None).encryption_keys)
