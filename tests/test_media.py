"""Downloading a clip's media from the Rhombus simulator: streamed, checked, never left behind."""

from __future__ import annotations

import tempfile
from typing import TYPE_CHECKING, Any

import pytest

from bot.media import MediaError, downloaded, media_url, remove_leftovers
from bot.rhombus import RhombusClient
from standins.rhombus import Fault, completes, media_bytes, media_sha256, stays
from tests.helpers import RHOMBUS_KEY

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

    from standins.rhombus import RhombusSimulator

CLIP = "MediaTestClip00000000A"
SIZE = 250_000  # one second of the simulator's footage
PATH = f"/media/metadata/us-west-2/{CLIP}.mp4"


@pytest.fixture
def temp_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where temporary files go during the test."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


@pytest.fixture
async def client(rhombus: RhombusSimulator) -> AsyncIterator[RhombusClient]:
    """A Rhombus client with the simulator's key."""
    async with RhombusClient(api_key=RHOMBUS_KEY, base_url=rhombus.url) as client:
        yield client


def complete_clip(rhombus: RhombusSimulator, **fields: Any) -> str:
    """A clip that is complete now, one second long; its mp4's URL."""
    rhombus.add_clip(CLIP, script=stays("COMPLETE", "Complete", 100), durationSec=1, **fields)
    return media_url(rhombus.url, "us-west-2", CLIP, "mp4")


async def fetch(client: RhombusClient, url: str, **limits: object) -> bytes:
    """Download through bot.media with the clip's announced size and digest; the bytes."""
    options: dict[str, object] = {
        "max_bytes": 10 * SIZE,
        "expected_size": SIZE,
        "expected_sha256": media_sha256(CLIP, SIZE),
        **limits,
    }
    async with downloaded(client, url, key="t1", **options) as file:  # type: ignore[arg-type]
        assert SIZE == file.size
        return file.path.read_bytes()


async def test_the_mp4_arrives_whole_and_its_file_goes(rhombus, client, temp_dir):
    """The bytes are the simulator's, the digest matches sha256Hex, the file is gone after."""
    url = complete_clip(rhombus)

    assert media_bytes(CLIP, SIZE) == await fetch(client, url)
    assert media_sha256(CLIP, SIZE) == rhombus.clip_json(CLIP)["sha256Hex"]
    assert [] == list(temp_dir.iterdir())


async def test_media_needs_the_api_key(rhombus, temp_dir):
    """A wrong key is refused by the media host, for good."""
    url = complete_clip(rhombus)
    async with RhombusClient(api_key="wrong-key-0123456789", base_url=rhombus.url) as wrong:
        with pytest.raises(MediaError) as refused:
            await fetch(wrong, url)

    assert (False, "Rhombus refused the API key for the media") == (
        refused.value.retryable,
        refused.value.reason,
    )
    assert [] == list(temp_dir.iterdir())


async def test_a_server_error_may_pass(rhombus, client, temp_dir):
    """A 502 from the media host is worth another try."""
    url = complete_clip(rhombus)
    rhombus.inject(Fault("server_error", path=PATH, status=502))

    with pytest.raises(MediaError) as failed:
        await fetch(client, url)

    assert failed.value.retryable
    assert media_bytes(CLIP, SIZE) == await fetch(client, url)
    assert [] == list(temp_dir.iterdir())


async def test_a_clip_not_complete_is_not_found(rhombus, client):
    """Before the clip is complete the media host has nothing: refused for good."""
    rhombus.add_clip(CLIP, script=completes(10))

    with pytest.raises(MediaError) as refused:
        await fetch(client, media_url(rhombus.url, "us-west-2", CLIP, "mp4"))

    assert (False, "Rhombus refused the media") == (refused.value.retryable, refused.value.reason)


REFUSALS = [
    ({"expected_size": SIZE + 1}, ("Rhombus sent 250,000 bytes of the 250,001 it announced", True)),
    ({"expected_sha256": "ab" * 32}, ("the file Rhombus sent does not match its digest", False)),
    ({"max_bytes": SIZE - 1}, ("the file is larger than the bot may send", False)),
]


@pytest.mark.parametrize(("limits", "refusal"), REFUSALS)
async def test_what_does_not_match_is_refused(rhombus, client, temp_dir, limits, refusal):
    """A wrong size, a wrong digest or too many bytes: an error saying so, no file left."""
    url = complete_clip(rhombus)

    with pytest.raises(MediaError) as refused:
        await fetch(client, url, **limits)

    assert refusal == (refused.value.reason, refused.value.retryable)
    assert [] == list(temp_dir.iterdir())


async def test_a_stream_longer_than_announced_is_cut_off(rhombus, client, temp_dir):
    """Rhombus announcing fewer bytes than it sends cannot fill the disk past the limit."""
    url = complete_clip(rhombus, byteCount=4 * SIZE)

    with pytest.raises(MediaError) as refused:
        await fetch(client, url, max_bytes=2 * SIZE, expected_size=None, expected_sha256=None)

    assert "the file is larger than the bot may send" == refused.value.reason
    assert [] == list(temp_dir.iterdir())


def test_leftovers_of_a_killed_process_are_removed(temp_dir):
    """The files a key's download left behind are removed; other keys' are not."""
    (temp_dir / "rhombus-clip-t1-abc.part").write_bytes(b"x")
    (temp_dir / "rhombus-clip-t2-def.part").write_bytes(b"y")

    remove_leftovers("t1")

    assert ["rhombus-clip-t2-def.part"] == [p.name for p in temp_dir.iterdir()]
