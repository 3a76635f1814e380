"""The bot's settings: one typed object, read once from the environment (and an optional `.env`)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Literal, Self
from urllib.parse import urljoin, urlsplit

from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from bot.clips import is_clip_id
from bot.secret_box import parse_keys

if TYPE_CHECKING:
    from pathlib import Path

US_API_URL = "https://api2.rhombussystems.com"
EU_API_URL = "https://api2.eu.rhombussystems.com"
US_CONSOLE_URL = "https://console.rhombussystems.com"
EU_CONSOLE_URL = "https://console.eu.rhombussystems.com"
US_MEDIA_URL = "https://media.rhombussystems.com"
EU_MEDIA_URL = "https://media.eu.rhombussystems.com"
DEFAULT_DATABASE_URL = "sqlite:///rhombus-clip-bot.db"

AuthScheme = Literal["api-token", "api", "partner-api-token", "partner-api"]
Region = Literal["US", "EU"]
OAUTH_REDIRECT_PATH = "/slack/oauth_redirect"
_LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
_BOTH_WAYS = (
    "One workspace needs SLACK_BOT_TOKEN and RHOMBUS_API_KEY (with SLACK_APP_TOKEN or "
    "SLACK_SIGNING_SECRET); many workspaces need SLACK_CLIENT_ID, SLACK_CLIENT_SECRET, "
    "SLACK_SIGNING_SECRET, PUBLIC_URL and ENCRYPTION_KEYS instead."
)

_ASYNC_DRIVERS = {
    "sqlite": "sqlite+aiosqlite",
    "sqlite+aiosqlite": "sqlite+aiosqlite",
    "postgres": "postgresql+asyncpg",
    "postgresql": "postgresql+asyncpg",
    "postgresql+asyncpg": "postgresql+asyncpg",
}


class ConfigError(Exception):
    """The environment does not describe a runnable bot; the message names every problem."""


@dataclass(frozen=True)
class RegionUrls:
    """Where one Rhombus region serves its API, its media and its console."""

    api: str
    media: str
    console: str


class Settings(BaseSettings):
    """Everything the bot reads from its environment. Secrets are `SecretStr`: masked in repr."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        frozen=True,
        hide_input_in_errors=True,
    )

    # Both set: distribution, any workspace installs with OAuth; neither: one workspace.
    slack_client_id: str | None = Field(
        default=None, description="The app's client id (many workspaces)."
    )
    slack_client_secret: SecretStr | None = Field(
        default=None,
        description="The app's client secret (many workspaces).",
        validate_default=True,
    )
    slack_bot_token: SecretStr | None = Field(
        default=None, description="Bot token, xoxb-… (one workspace).", validate_default=True
    )
    slack_app_token: SecretStr | None = Field(
        default=None, description="App-level token, xapp-… (set: Socket Mode)."
    )
    slack_signing_secret: SecretStr | None = Field(
        default=None,
        description="Signing secret (HTTP mode, and the OAuth routes of many workspaces).",
        validate_default=True,
    )
    slack_api_url: str = "https://slack.com/api/"
    # Whether the app has token rotation turned on: bot tokens then expire every 12 hours.
    slack_token_rotation: bool = False
    # The bot's public https address; installs come back to {PUBLIC_URL}/slack/oauth_redirect.
    public_url: str | None = Field(default=None, validate_default=True)
    # Fernet keys sealing workspace tokens and Rhombus keys at rest: comma-separated, newest first.
    encryption_keys: SecretStr | None = Field(default=None, validate_default=True)

    rhombus_api_key: SecretStr | None = Field(
        default=None, description="Rhombus API key (one workspace).", validate_default=True
    )
    rhombus_api_url: str = US_API_URL
    rhombus_auth_scheme: AuthScheme = "api-token"
    rhombus_org_uuid: str | None = None
    rhombus_console_url: str | None = None
    rhombus_timeout_seconds: float = Field(default=10.0, gt=0, le=120)
    # The EU region, for workspaces that connect an EU organisation (None: Rhombus's own hosts).
    rhombus_eu_api_url: str = EU_API_URL
    rhombus_eu_media_url: str | None = None
    rhombus_eu_console_url: str | None = None

    # Not in repr: a PostgreSQL URL carries its password.
    database_url: str = Field(default=DEFAULT_DATABASE_URL, repr=False)
    poll_interval_seconds: float = Field(default=5.0, ge=0.05, le=3600)
    max_poll_interval_seconds: float = Field(default=60.0, gt=0, le=3600)
    rhombus_calls_per_second: float = Field(default=5.0, gt=0, le=1000)
    give_up_minutes: float = Field(default=30.0, gt=0, le=7 * 24 * 60)
    slack_edits_per_minute: float = Field(default=48.0, gt=0, le=600)
    max_clips_per_command: int = Field(default=5, ge=1, le=20)
    post_restricted_clips: bool = False
    home_refresh_seconds: float = Field(default=10.0, ge=0.1, le=3600)
    allowed_channel_ids: Annotated[frozenset[str], NoDecode] = frozenset()
    allowed_user_ids: Annotated[frozenset[str], NoDecode] = frozenset()
    # Who may make clips with `/clip new` (unset: everyone who may use /clip), and who sees them.
    clip_creators: Annotated[frozenset[str], NoDecode] = frozenset()
    clip_visibility: Literal["PRIVATE", "ROLE_RESTRICTED", "ORG_WIDE"] = "ORG_WIDE"
    host: str = "0.0.0.0"  # noqa: S104  # a container's port is only reachable on all interfaces
    port: int = Field(default=3000, ge=0, le=65535)  # 0: any free port
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["text", "json"] = "text"
    # The finished clip in Slack (bot.delivery): the mp4 in the thread, the still in the message.
    rhombus_media_url: str | None = None
    deliver_video: bool = True
    deliver_thumbnail: bool = True
    video_max_mb: float = Field(default=200.0, gt=0, le=1024)
    delivery_concurrency: int = Field(default=2, ge=1, le=16)

    @classmethod
    def from_env(cls, env_file: str | Path | None = ".env") -> Self:
        """Build the settings, or raise ConfigError naming every missing or malformed variable."""
        try:
            return cls(_env_file=env_file)
        except ValidationError as error:
            raise ConfigError(_describe(error)) from None

    @field_validator("allowed_channel_ids", "allowed_user_ids", "clip_creators", mode="before")
    @classmethod
    def _id_list(cls, value: object) -> object:
        if isinstance(value, str):
            ids = frozenset(
                part.strip() for part in value.replace(";", ",").split(",") if part.strip()
            )
            if bad := sorted(i for i in ids if not re.fullmatch(r"[A-Z0-9]{2,32}", i)):
                raise ValueError(f"not Slack ids: {', '.join(bad)} (expected e.g. C0123ABCD)")
            return ids
        return value

    @field_validator("log_level", "clip_visibility", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator(
        "slack_api_url",
        "rhombus_api_url",
        "rhombus_console_url",
        "rhombus_media_url",
        "rhombus_eu_api_url",
        "rhombus_eu_media_url",
        "rhombus_eu_console_url",
    )
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in {"http", "https"} or not parts.netloc:
            raise ValueError("must be an http(s) URL")
        return value

    @field_validator("rhombus_org_uuid")
    @classmethod
    def _ruuid(cls, value: str | None) -> str | None:
        if value is not None and not is_clip_id(value):
            raise ValueError("must be a Rhombus org uuid: 22 characters of A-Z a-z 0-9 - _")
        return value or None

    @field_validator("database_url")
    @classmethod
    def _database_scheme(cls, value: str) -> str:
        scheme = value.split("://", 1)[0].lower() if "://" in value else ""
        if scheme not in _ASYNC_DRIVERS:
            raise ValueError("must start with sqlite:/// or postgresql://")
        return value

    @field_validator("slack_client_id")
    @classmethod
    def _client_id(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[0-9]+\.[0-9]+", value.strip()):
            raise ValueError("must be the app's client id, e.g. 1234567890.1234567890")
        return None if value is None else value.strip()

    @field_validator("slack_client_secret")
    @classmethod
    def _client_secret(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        if value is not None and not value.get_secret_value().strip():
            value = None
        has_id = info.data.get("slack_client_id") is not None
        if value is None and has_id:
            raise ValueError("not set (SLACK_CLIENT_ID is set: many workspaces need both)")
        if value is not None and not has_id and "slack_client_id" in info.data:
            raise ValueError("set without SLACK_CLIENT_ID: many workspaces need both")
        return value

    @field_validator("slack_signing_secret")
    @classmethod
    def _http_mode_needs_secret(
        cls, value: SecretStr | None, info: ValidationInfo
    ) -> SecretStr | None:
        if value is not None:
            return value
        if _many_workspaces(info):
            raise ValueError(
                "not set (many workspaces need it: installs come back over HTTP, "
                "even with SLACK_APP_TOKEN)"
            )
        # Only when the app token is known to be absent (not merely malformed).
        if "slack_app_token" in info.data and info.data["slack_app_token"] is None:
            raise ValueError(
                "not set (needed in HTTP mode; or set SLACK_APP_TOKEN for Socket Mode)"
            )
        return value

    @field_validator("slack_bot_token")
    @classmethod
    def _bot_token(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        if _many_workspaces(info):
            if value is not None:
                raise ValueError(
                    "set, but with SLACK_CLIENT_ID each workspace's token comes from its "
                    "install: unset it"
                )
            return None
        if value is None:
            raise ValueError("not set")
        if not value.get_secret_value().startswith("xoxb-"):
            raise ValueError("must be a bot token starting with xoxb-")
        return value

    @field_validator("rhombus_api_key")
    @classmethod
    def _rhombus_key(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        if _many_workspaces(info):
            if value is not None:
                raise ValueError(
                    "set, but with SLACK_CLIENT_ID each workspace connects its own Rhombus "
                    "organisation from the App Home: unset it"
                )
            return None
        if value is None or not value.get_secret_value().strip():
            raise ValueError("not set")
        return value

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None or not value.strip():
            if _many_workspaces(info):
                raise ValueError(
                    f"not set (many workspaces need it: Slack sends installs back to "
                    f"PUBLIC_URL{OAUTH_REDIRECT_PATH})"
                )
            return None
        parts = urlsplit(value.strip())
        loopback = parts.hostname in _LOOPBACK_HOSTS
        if parts.scheme != "https" and not (parts.scheme == "http" and loopback):
            raise ValueError("must be an https URL (http only for 127.0.0.1 or localhost)")
        if not parts.hostname or parts.query or parts.fragment or parts.username:
            raise ValueError("must be the bot's address alone, e.g. https://clips.example.com")
        return value.strip().rstrip("/")

    @field_validator("encryption_keys")
    @classmethod
    def _encryption_keys(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            if _many_workspaces(info):
                raise ValueError(
                    "not set (many workspaces need it to seal tokens and keys at rest; "
                    "generate one: python -m bot new-key)"
                )
            return None
        parse_keys(value.get_secret_value())  # ValueError naming the bad key's position only
        return value

    @field_validator("slack_app_token")
    @classmethod
    def _app_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().startswith("xapp-"):
            raise ValueError("must be an app-level token starting with xapp-")
        return value

    @property
    def distributed(self) -> bool:
        """Whether any workspace may install the app (SLACK_CLIENT_ID and SLACK_CLIENT_SECRET)."""
        return self.slack_client_id is not None and self.slack_client_secret is not None

    @property
    def slack_authorize_url(self) -> str:
        """Slack's consent page, where "Add to Slack" leads: beside SLACK_API_URL's /api/."""
        return urljoin(self.slack_api_url, "/oauth/v2/authorize")

    @property
    def oauth_redirect_url(self) -> str | None:
        """Where Slack sends an install back: {PUBLIC_URL}/slack/oauth_redirect."""
        return None if self.public_url is None else self.public_url + OAUTH_REDIRECT_PATH

    def region(self, name: Region) -> RegionUrls:
        """A Rhombus region's addresses: the US from RHOMBUS_*_URL, the EU from RHOMBUS_EU_*."""
        if name == "US":
            return RegionUrls(self.rhombus_api_url, self.media_url, self.console_url)
        return RegionUrls(
            self.rhombus_eu_api_url,
            (self.rhombus_eu_media_url or EU_MEDIA_URL).rstrip("/"),
            (self.rhombus_eu_console_url or EU_CONSOLE_URL).rstrip("/"),
        )

    @property
    def socket_mode(self) -> bool:
        """Whether the bot connects out over Socket Mode instead of receiving HTTP requests."""
        return self.slack_app_token is not None

    @property
    def async_database_url(self) -> str:
        """DATABASE_URL with the async driver SQLAlchemy needs (aiosqlite or asyncpg)."""
        scheme, rest = self.database_url.split("://", 1)
        return f"{_ASYNC_DRIVERS[scheme.lower()]}://{rest}"

    @property
    def console_url(self) -> str:
        """The Rhombus console of the key's region, for links people can open."""
        if self.rhombus_console_url:
            return self.rhombus_console_url.rstrip("/")
        return EU_CONSOLE_URL if ".eu." in self.rhombus_api_url else US_CONSOLE_URL

    @property
    def media_url(self) -> str:
        """Where Rhombus serves clip media: the key's region unless RHOMBUS_MEDIA_URL says."""
        if self.rhombus_media_url:
            return self.rhombus_media_url.rstrip("/")
        return EU_MEDIA_URL if ".eu." in self.rhombus_api_url else US_MEDIA_URL


def _many_workspaces(info: ValidationInfo) -> bool:
    """Whether the settings ask for distribution: a client id or secret, even only one of them."""
    # A field missing from `data` failed its own validation: it was set, but wrongly or alone.
    return any(
        info.data.get(name, "failed") is not None
        for name in ("slack_client_id", "slack_client_secret")
    )


def _describe(error: ValidationError) -> str:
    lines = []
    names = set()
    for problem in error.errors():
        name = "_".join(str(part) for part in problem["loc"]).upper()
        names.add(name)
        message = problem["msg"].removeprefix("Value error, ")
        if problem["type"] == "missing":
            lines.append(f"  {name}: not set")
        elif name:
            lines.append(f"  {name}: {message}")
        else:
            lines.append(f"  {message}")
    both_ways = f"\n{_BOTH_WAYS}" if names & {"SLACK_BOT_TOKEN", "RHOMBUS_API_KEY"} else ""
    return (
        "The bot cannot start; these settings are missing or malformed:\n"
        + "\n".join(lines)
        + both_ways
        + "\nSet them in the environment or in .env (see .env.example and the README). "
        "To try the bot without Slack or Rhombus credentials, run `make demo`."
    )
