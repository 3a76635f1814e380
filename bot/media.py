"""A finished clip's media from Rhombus: streamed to a temporary file, its size and digest checked.

Where the files are is not in Rhombus's API spec; Rhombus's own examples fetch
`{media host}/media/metadata/{clipLocation.region}/{clipUuid}.mp4` (and `.jpeg` for the
thumbnail) with the API key's headers (rhombus-api-examples-java `getVideoUrl`,
`getThumbnailUrl`).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from bot.rhombus import AuthenticationError, BadResponseError, RhombusError

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from typing import BinaryIO

    from bot.rhombus import RhombusClient

MEGABYTE = 1_000_000
TEMP_PREFIX = "rhombus-clip-"
CHUNK_BYTES = 256 * 1024
# A transfer may take this long plus one second per MIN_BYTES_PER_SECOND of the file.
BASE_SECONDS = 60.0
MIN_BYTES_PER_SECOND = 1024 * 1024


class MediaError(Exception):
    """The media could not be fetched; `retryable` says whether trying again may help."""

    def __init__(self, reason: str, *, retryable: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable


@dataclass(frozen=True)
class Downloaded:
    """A media file on disk: where, how many bytes, their sha256."""

    path: Path
    size: int
    sha256: str


def media_url(media_host: str, region: str, clip_id: str, extension: str) -> str:
    """Where Rhombus serves a clip's `.mp4` or `.jpeg`."""
    return f"{media_host.rstrip('/')}/media/metadata/{region}/{clip_id}.{extension}"


def transfer_seconds(size: int) -> float:
    """How long moving `size` bytes may take, download or upload."""
    return BASE_SECONDS + max(0, size) / MIN_BYTES_PER_SECOND


def temp_folder() -> Path:
    """The folder temporary media files go to."""
    return Path(tempfile.gettempdir())


def remove_leftovers(key: str) -> None:
    """Remove the temporary files of `key` a killed process left behind."""
    for leftover in temp_folder().glob(f"{TEMP_PREFIX}{key}-*"):
        with contextlib.suppress(OSError):
            leftover.unlink()


@contextlib.asynccontextmanager
async def downloaded(  # noqa: PLR0913
    rhombus: RhombusClient,
    url: str,
    *,
    key: str,
    max_bytes: int,
    expected_size: int | None,
    expected_sha256: str | None,
) -> AsyncIterator[Downloaded]:
    """Download to a temporary file named after `key`, checked; removed on leaving, whatever."""
    descriptor, name = tempfile.mkstemp(prefix=f"{TEMP_PREFIX}{key}-", suffix=".part")
    path = Path(name)
    try:
        with os.fdopen(descriptor, "wb") as file:
            size, digest = await _fetch(rhombus, url, file, max_bytes, expected_size)
        if expected_size is not None and size != expected_size:
            raise MediaError(
                f"Rhombus sent {size:,} bytes of the {expected_size:,} it announced",
                retryable=True,
            )
        if expected_sha256 and digest != expected_sha256.strip().lower():
            raise MediaError("the file Rhombus sent does not match its digest", retryable=False)
        yield Downloaded(path, size, digest)
    finally:
        with contextlib.suppress(OSError):
            path.unlink()  # noqa: ASYNC240  # one local unlink, also on cancellation


async def _fetch(
    rhombus: RhombusClient,
    url: str,
    file: BinaryIO,
    max_bytes: int,
    expected_size: int | None,
) -> tuple[int, str]:
    hasher = hashlib.sha256()
    size = 0

    def keep(chunk: bytes) -> None:
        hasher.update(chunk)
        file.write(chunk)

    deadline = transfer_seconds(expected_size if expected_size is not None else max_bytes)
    try:
        async with (
            asyncio.timeout(deadline),
            rhombus.media(url, chunk_seconds=min(60.0, deadline)) as response,
        ):
            announced = response.headers.get("content-length")
            if announced and announced.isdigit() and int(announced) > max_bytes:
                raise MediaError("the file is larger than the bot may send", retryable=False)
            async for chunk in response.aiter_bytes(CHUNK_BYTES):
                size += len(chunk)
                if size > max_bytes:
                    raise MediaError("the file is larger than the bot may send", retryable=False)
                # Off the loop: a slow disk must not hold up polls.
                await asyncio.to_thread(keep, chunk)
    except TimeoutError as error:
        raise MediaError("Rhombus took too long to send the file", retryable=True) from error
    except AuthenticationError as error:
        raise MediaError("Rhombus refused the API key for the media", retryable=False) from error
    except BadResponseError as error:  # a 4xx: the file is not there for this key
        raise MediaError("Rhombus refused the media", retryable=False) from error
    except RhombusError as error:
        raise MediaError(str(error), retryable=error.retryable) from error
    return size, hasher.hexdigest()
