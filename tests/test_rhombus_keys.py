"""Each workspace's Rhombus key, sealed at rest, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

import asyncpg
import pytest
from pydantic import SecretStr

from bot.rhombus_keys import RhombusConnection, RhombusKeys
from bot.secret_box import SecretBox
from bot.store import Store

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

KEY = "rk-Acme-0123456789-secret-ab12"
PARTNER_KEY = "pk-Integrator-9876543210-cd34"
CLIENT_ORG = "ClientOrg000000000000A"


def connection(team_id: str = "T0ACME", key: str = KEY, **fields: object) -> RhombusConnection:
    """A workspace's connection, US API key unless told otherwise."""
    values: dict[str, object] = {
        "team_id": team_id,
        "api_key": SecretStr(key),
        "region": "US",
        "kind": "api",
        "client_org": None,
        "connected_by": "U0ALICE",
        "connected_at": 1_764_000_000.0,
    }
    return RhombusConnection(**(values | fields))  # type: ignore[arg-type]


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh database: a SQLite file, or a PostgreSQL database of its own."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url.replace("postgresql://", "postgresql+asyncpg://", 1)


@pytest.fixture
async def store(db_url: str) -> AsyncIterator[Store]:
    """The bot's database, opened (its tables created)."""
    opened = Store(db_url)
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()


async def stored_text(store: Store, db_url: str, tmp_path: Path) -> str:
    """Everything the database holds for the table, as text: the SQLite files, or the rows."""
    if db_url.startswith("sqlite"):
        await store.close()  # the WAL checkpointed into the file
        return (await asyncio.to_thread(_read_all, tmp_path)).decode("latin-1")
    connection = await asyncpg.connect(db_url.replace("+asyncpg", ""))
    try:
        rows = await connection.fetch("SELECT row_to_json(r)::text AS j FROM rhombus_connections r")
    finally:
        await connection.close()
    return "\n".join(row["j"] for row in rows)


def _read_all(folder: Path) -> bytes:
    return b"".join(path.read_bytes() for path in folder.glob("bot.db*"))


async def test_a_connection_is_stored_and_read_back(store: Store) -> None:
    """What is put comes back equal; the key shows only its last 4 characters anywhere."""
    keys = RhombusKeys(store, SecretBox([SecretBox.new_key()]))
    partner = connection("T0GLOBEX", PARTNER_KEY, kind="partner", client_org=CLIENT_ORG)
    await keys.put(connection())
    await keys.put(partner)

    assert connection() == await keys.get("T0ACME")
    assert partner == await keys.get("T0GLOBEX")
    assert ("ab12", "api-token") == (connection().last4, connection().auth_scheme)
    assert ("cd34", "partner-api-token") == (partner.last4, partner.auth_scheme)
    assert [connection(), partner] == await keys.all()
    assert KEY not in repr(await keys.get("T0ACME"))
    assert await keys.get("T0NOBODY") is None


async def test_changing_and_removing_a_connection(store: Store) -> None:
    """A second put replaces the first; remove says whether there was one."""
    keys = RhombusKeys(store, SecretBox([SecretBox.new_key()]))
    await keys.put(connection())
    changed = connection(key="rk-new-key-zz99", region="EU", connected_by="U0BOB")
    await keys.put(changed)
    assert changed == await keys.get("T0ACME")

    assert (True, False) == (await keys.remove("T0ACME"), await keys.remove("T0ACME"))
    assert await keys.get("T0ACME") is None


async def test_the_database_holds_no_key_in_plain_text(
    store: Store, db_url: str, tmp_path: Path
) -> None:
    """Neither the database file nor the rows contain the key, only its sealed form."""
    keys = RhombusKeys(store, SecretBox([SecretBox.new_key()]))
    await keys.put(connection())
    await keys.put(connection("T0GLOBEX", PARTNER_KEY, kind="partner", client_org=CLIENT_ORG))

    text = await stored_text(store, db_url, tmp_path)
    assert "T0GLOBEX" in text  # the scan reads what was written
    assert KEY not in text
    assert PARTNER_KEY not in text
    assert "secret" not in text


async def test_rotating_encryption_keys_keeps_every_connection(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    """A new key in front opens the old seals; resealed, the old key can go."""
    old, new = SecretBox.new_key(), SecretBox.new_key()
    await RhombusKeys(store, SecretBox([old])).put(connection())
    await RhombusKeys(store, SecretBox([old])).put(connection("T0GLOBEX"))

    both = RhombusKeys(store, SecretBox([new, old]))
    assert connection() == await both.get("T0ACME")
    assert 2 == await both.reseal_all()

    newest_only = RhombusKeys(store, SecretBox([new]))
    assert connection() == await newest_only.get("T0ACME")
    assert [] == [record for record in caplog.records if record.levelno >= logging.WARNING]


async def test_a_key_no_configured_key_opens_is_not_connected_and_logged_once(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    """Sealed with a dropped key: not connected, one ERROR naming the team, never the key."""
    await RhombusKeys(store, SecretBox([SecretBox.new_key()])).put(connection())
    keys = RhombusKeys(store, SecretBox([SecretBox.new_key()]))

    assert await keys.get("T0ACME") is None
    assert [] == await keys.all()
    assert 0 == await keys.reseal_all()
    errors = [record for record in caplog.records if record.levelno >= logging.ERROR]
    assert 1 == len(errors)
    assert "T0ACME" in errors[0].getMessage()
    assert KEY not in caplog.text

    await keys.put(connection())  # connected again with the keys of today
    assert connection() == await keys.get("T0ACME")
