"""The bot's settings: one typed object, read once from the environment (and an optional `.env`)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Annotated, Literal, Self
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from bot.clips import is_clip_id

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

_ASYNC_DRIVERS = {
    "sqlite": "sqlite+aiosqlite",
    "sqlite+aiosqlite": "sqlite+aiosqlite",
    "postgres": "postgresql+asyncpg",
    "postgresql": "postgresql+asyncpg",
    "postgresql+asyncpg": "postgresql+asyncpg",
}


class ConfigError(Exception):
    """The environment does not describe a runnable bot; the message names every problem."""


class Settings(BaseSettings):
    """Everything the bot reads from its environment. Secrets are `SecretStr`: masked in repr."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        frozen=True,
        hide_input_in_errors=True,
    )

    slack_bot_token: SecretStr = Field(description="Bot token, xoxb-…")
    slack_app_token: SecretStr | None = Field(
        default=None, description="App-level token, xapp-… (set: Socket Mode)."
    )
    slack_signing_secret: SecretStr | None = Field(
        default=None, description="Signing secret (HTTP mode).", validate_default=True
    )
    slack_api_url: str = "https://slack.com/api/"

    rhombus_api_key: SecretStr
    rhombus_api_url: str = US_API_URL
    rhombus_auth_scheme: AuthScheme = "api-token"
    rhombus_org_uuid: str | None = None
    rhombus_console_url: str | None = None
    rhombus_timeout_seconds: float = Field(default=10.0, gt=0, le=120)

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

    @field_validator("slack_api_url", "rhombus_api_url", "rhombus_console_url", "rhombus_media_url")
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

    @field_validator("slack_signing_secret")
    @classmethod
    def _http_mode_needs_secret(
        cls, value: SecretStr | None, info: ValidationInfo
    ) -> SecretStr | None:
        # Only when the app token is known to be absent (not merely malformed).
        if (
            value is None
            and "slack_app_token" in info.data
            and info.data["slack_app_token"] is None
        ):
            raise ValueError(
                "not set (needed in HTTP mode; or set SLACK_APP_TOKEN for Socket Mode)"
            )
        return value

    @field_validator("slack_bot_token")
    @classmethod
    def _bot_token(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value().startswith("xoxb-"):
            raise ValueError("must be a bot token starting with xoxb-")
        return value

    @field_validator("slack_app_token")
    @classmethod
    def _app_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().startswith("xapp-"):
            raise ValueError("must be an app-level token starting with xapp-")
        return value

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


def _describe(error: ValidationError) -> str:
    lines = []
    for problem in error.errors():
        name = "_".join(str(part) for part in problem["loc"]).upper()
        message = problem["msg"].removeprefix("Value error, ")
        if problem["type"] == "missing":
            lines.append(f"  {name}: not set")
        elif name:
            lines.append(f"  {name}: {message}")
        else:
            lines.append(f"  {message}")
    return (
        "The bot cannot start; these settings are missing or malformed:\n"
        + "\n".join(lines)
        + "\nSet them in the environment or in .env (see .env.example and the README). "
        "To try the bot without Slack or Rhombus credentials, run `make demo`."
    )
