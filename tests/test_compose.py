"""compose.yaml: PostgreSQL and two replicas of the bot's image, sharing its shards."""

from __future__ import annotations

from pathlib import Path

import yaml

from bot.config import Settings
from bot.shards import ShardHolder

ROOT = Path(__file__).parent.parent


def test_compose_runs_two_replicas_on_its_postgresql():
    """Two replicas of the image, each on the compose PostgreSQL, so they split the shards."""
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    bot, postgres = compose["services"]["bot"], compose["services"]["postgres"]
    settings = Settings(
        _env_file=None,
        slack_bot_token="xoxb-compose",
        slack_app_token="xapp-compose",
        rhombus_api_key="compose-key",
        database_url=bot["environment"]["DATABASE_URL"],
    )

    assert 2 == bot["deploy"]["replicas"]
    assert "service_healthy" == bot["depends_on"]["postgres"]["condition"]
    assert ShardHolder.for_database(settings.async_database_url) is not None
    user, database = (
        postgres["environment"]["POSTGRES_USER"],
        postgres["environment"]["POSTGRES_DB"],
    )
    assert f"postgresql://{user}:" in settings.database_url
    assert settings.database_url.endswith(f"@postgres:5432/{database}")
