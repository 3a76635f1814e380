"""An async client for the parts of the Rhombus API the bot uses."""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import functools
import logging
import time
from typing import TYPE_CHECKING, Any, ClassVar, Self, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from bot.budget import Priority, TokenBucket
from bot.cameras import (  # noqa: TC001  # pydantic reads annotations at runtime
    CameraLocation,
    CameraState,
    TimeWindow,
)
from bot.clips import Clip, is_clip_id
from bot.rhombus_answers import (
    CameraLocationsAnswer,
    CamerasAnswer,
    CameraStatesAnswer,
    ClipAnswer,
    ClipsPage,
    ClipsPageAnswer,
    MaxSpliceAnswer,
    PresenceAnswer,
    Splice,
    SpliceAnswer,
)

if TYPE_CHECKING:
    import ssl
    from collections.abc import AsyncIterator, Awaitable, Callable
    from types import TracebackType

    from bot.config import Settings

logger = logging.getLogger(__name__)

USER_AGENT = "rhombus-clip-bot/0.1 (+https://github.com/)"
DEFAULT_RETRY_AFTER = 1.0
MAX_PAGE_SIZE = 200
MAX_RETRY_AFTER = 3600.0

M = TypeVar("M", bound=BaseModel)


class RhombusError(Exception):
    """Something went wrong talking to Rhombus."""

    retryable: ClassVar[bool] = False


class RejectedError(RhombusError):
    """Rhombus answered `error: true`: for a clip, it does not exist or the key cannot see it."""


class AuthenticationError(RhombusError):
    """Rhombus refused the API key (401/403)."""


class RateLimitedError(RhombusError):
    """Rhombus throttled the organisation; no call should be made before `retry_after` passes."""

    retryable = True

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class UnavailableError(RhombusError):
    """Rhombus could not be reached or failed on its side (5xx, timeout, connection error)."""

    retryable = True


class BadResponseError(RhombusError):
    """Rhombus answered with something that is not the JSON its spec promises."""

    retryable = True


class RhombusClient:
    """Calls Rhombus for one organisation (one API key) over a shared `httpx.AsyncClient`."""

    def __init__(  # noqa: PLR0913
        self,
        *,
        api_key: str,
        base_url: str,
        auth_scheme: str = "api-token",
        org_uuid: str | None = None,
        timeout: float = 10.0,
        camera_cache_seconds: float = 600.0,
        calls_per_second: float | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        headers = {
            "x-auth-apikey": api_key,
            "x-auth-scheme": auth_scheme,
            "accept": "application/json",
            "user-agent": USER_AGENT,
        }
        if org_uuid:
            headers["x-auth-org"] = org_uuid
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            headers=headers,
            timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
            limits=httpx.Limits(max_connections=50, max_keepalive_connections=20),
            transport=transport,
            verify=_tls(),
        )
        # Rhombus rate-limits per organisation: once it says 429, every call waits it out.
        self._paused_until = 0.0
        # Our own share of the organisation's limit, which other integrations use too.
        self._budget = (
            TokenBucket(calls_per_second, max(1.0, calls_per_second * 2))
            if calls_per_second
            else None
        )
        self._camera_cache_seconds = camera_cache_seconds
        self._cameras: dict[str, str] = {}
        self._cameras_fetched_at: float | None = None
        self._cameras_lock = asyncio.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> Self:
        """Build the client the settings describe (one workspace: RHOMBUS_API_KEY)."""
        if settings.rhombus_api_key is None:
            raise ValueError("RHOMBUS_API_KEY is not set: many workspaces connect their own keys")
        return cls(
            api_key=settings.rhombus_api_key.get_secret_value(),
            base_url=settings.rhombus_api_url,
            auth_scheme=settings.rhombus_auth_scheme,
            org_uuid=settings.rhombus_org_uuid,
            timeout=settings.rhombus_timeout_seconds,
            calls_per_second=settings.rhombus_calls_per_second,
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    def add_hooks(
        self,
        *,
        request: Callable[[httpx.Request], Awaitable[None]],
        response: Callable[[httpx.Response], Awaitable[None]],
    ) -> None:
        """Call `request` with every call as it goes out and `response` with every answer."""
        self._http.event_hooks["request"].append(request)
        self._http.event_hooks["response"].append(response)

    @property
    def paused_for(self) -> float:
        """Seconds left before Rhombus's last `Retry-After` passes (0 when calls may go out)."""
        return max(0.0, self._paused_until - time.monotonic())

    async def get_clip(self, clip_uuid: str, *, priority: Priority = Priority.POLL) -> Clip:
        """The saved clip with its current progress (`getClipWithProgress`)."""
        answer = await self._request(
            "/api/event/getClipWithProgress", {"clipUuid": clip_uuid}, priority=priority
        )
        parsed = _parse(ClipAnswer, answer, "getClipWithProgress")
        if parsed.clip is None:
            raise BadResponseError("Rhombus answered getClipWithProgress without a clip")
        return parsed.clip

    async def get_clips_page(
        self,
        *,
        page_size: int = MAX_PAGE_SIZE,
        page_token: str | None = None,
        priority: Priority = Priority.PAGE,
    ) -> ClipsPage:
        """One page of the organisation's saved clips with progress (`getClipsWithProgress`)."""
        body: dict[str, Any] = {"pageSize": max(1, min(MAX_PAGE_SIZE, page_size))}
        if page_token:
            body["pageToken"] = page_token
        answer = await self._request("/api/event/getClipsWithProgress", body, priority=priority)
        parsed = _parse(ClipsPageAnswer, answer, "getClipsWithProgress")
        return ClipsPage(parsed.saved_clips or [], parsed.page_token or None)

    async def recent_clips(
        self,
        *,
        after_ms: int,
        page_size: int,
        page_token: str | None = None,
        priority: Priority = Priority.LOOKUP,
    ) -> ClipsPage:
        """A page of the clips saved since `after_ms`, newest first, without alarm monitoring's."""
        body: dict[str, Any] = {
            "pageSize": max(1, min(MAX_PAGE_SIZE, page_size)),
            "sortField": "timestamp",
            "sortOrder": "desc",
            "timestampMsAfter": after_ms,
            "excludeAlertMonitoringClips": True,
        }
        if page_token:
            body["pageToken"] = page_token
        answer = await self._request("/api/event/getClipsWithProgress", body, priority=priority)
        parsed = _parse(ClipsPageAnswer, answer, "getClipsWithProgress")
        return ClipsPage(parsed.saved_clips or [], parsed.page_token or None)

    async def camera_names(self, *, priority: Priority = Priority.LOOKUP) -> dict[str, str]:
        """Camera uuid (no facet) -> name, from `getMinimalCameraStateList`, cached for a while.

        A person's new status message waits for it, so it goes ahead of polls; being cached, it
        is one call in many minutes.
        """
        async with self._cameras_lock:
            fetched_at = self._cameras_fetched_at
            if fetched_at is None or time.monotonic() - fetched_at > self._camera_cache_seconds:
                answer = await self._request(
                    "/api/camera/getMinimalCameraStateList", {}, priority=priority
                )
                cameras = _parse(CamerasAnswer, answer, "getMinimalCameraStateList").camera_states
                self._cameras = {
                    camera.uuid.split(".", 1)[0]: camera.name
                    for camera in cameras or ()
                    if camera.uuid and camera.name
                }
                self._cameras_fetched_at = time.monotonic()
            return dict(self._cameras)

    @contextlib.asynccontextmanager
    async def media(
        self, url: str, *, chunk_seconds: float, priority: Priority = Priority.MEDIA
    ) -> AsyncIterator[httpx.Response]:
        """GET a media file (a full URL on the media host) with the API's credentials, streamed.

        It counts against the budget like any call. The response's status is checked; reading
        its body raises UnavailableError when the transfer fails or a chunk takes longer than
        `chunk_seconds`.
        """
        if self._budget is not None:
            await self._budget.take(priority)
        if (wait := self.paused_for) > 0:
            raise RateLimitedError(f"Rhombus asked us to wait {wait:.0f} s more", wait)
        name = url.rsplit("/", 1)[-1]
        try:
            async with self._http.stream(
                "GET",
                url,
                headers={"accept": "*/*"},
                timeout=httpx.Timeout(chunk_seconds, connect=min(chunk_seconds, 5.0)),
            ) as response:
                self._check_status(name, response)
                yield response
        except httpx.TimeoutException as error:
            raise UnavailableError(f"Rhombus did not send {name} in time") from error
        except httpx.HTTPError as error:
            raise UnavailableError(
                f"Rhombus could not be reached for {name} ({type(error).__name__})"
            ) from error

    # --- Making clips -------------------------------------------------------------------------

    async def camera_states(self) -> list[CameraState]:
        """Every camera of the organisation, archived ones left out (getMinimalCameraStateList)."""
        answer = await self._request(
            "/api/camera/getMinimalCameraStateList",
            {"includeMummified": False},
            priority=Priority.LOOKUP,
        )
        return _parse(CameraStatesAnswer, answer, "getMinimalCameraStateList").camera_states or []

    async def camera_locations(self) -> dict[str, CameraLocation]:
        """Camera uuid -> its name and location's name (getMinimalCameraLocationMap)."""
        answer = await self._request(
            "/api/camera/getMinimalCameraLocationMap", {}, priority=Priority.LOOKUP
        )
        parsed = _parse(CameraLocationsAnswer, answer, "getMinimalCameraLocationMap")
        return parsed.camera_location_map or {}

    async def max_splice_duration(self) -> int | None:
        """The longest clip the organisation may make, in seconds, if Rhombus says."""
        answer = await self._request(
            "/api/video/getMaxSpliceDuration", {}, priority=Priority.LOOKUP
        )
        return _parse(MaxSpliceAnswer, answer, "getMaxSpliceDuration").max_duration

    async def presence_windows(
        self, camera_uuid: str, start_sec: int, duration_sec: int
    ) -> list[TimeWindow]:
        """The stretches of recorded footage (cloud or local) of a camera within a range."""
        body = {"cameraUuid": camera_uuid, "startTimeSec": start_sec, "durationSec": duration_sec}
        answer = await self._request(
            "/api/camera/getPresenceWindows", body, priority=Priority.LOOKUP
        )
        kinds = _parse(PresenceAnswer, answer, "getPresenceWindows").presence_windows or {}
        return [window for windows in kinds.values() for window in windows or ()]

    async def splice(self, wanted: Splice) -> str:
        """Make a saved clip (spliceV3); its uuid. RejectedError carries Rhombus's errorMsg."""
        body = {
            "deviceUuids": wanted.devices,
            "startTimeMillis": wanted.start_ms,
            "durationSec": wanted.duration_sec,
            "title": wanted.title,
            "description": wanted.description,
            "saveToConsole": True,
            "accessSettings": {"visibility": wanted.visibility},
        }
        answer = await self._request("/api/video/spliceV3", body, priority=Priority.LOOKUP)
        parsed = _parse(SpliceAnswer, answer, "spliceV3")
        # Rhombus's React SDK reads `clipUuid ?? clipUuidList[0]` (rhombusClip.ts).
        candidates: list[str | None] = [parsed.clip_uuid, *(parsed.clip_uuid_list or ())]
        found = next((uuid for uuid in candidates if uuid and is_clip_id(uuid)), None)
        if found is None:
            raise BadResponseError("Rhombus answered spliceV3 without a clip uuid")
        return found

    async def cancel_splice(self, clip_uuid: str) -> None:
        """Stop making a clip (cancelSpliceV2)."""
        await self._request(
            "/api/video/cancelSpliceV2", {"clipUuid": clip_uuid}, priority=Priority.LOOKUP
        )

    async def retry_splice(self, clip_uuid: str) -> None:
        """Make a failed clip again (retrySplice)."""
        await self._request(
            "/api/video/retrySplice", {"clipUuid": clip_uuid}, priority=Priority.LOOKUP
        )

    async def _request(
        self, path: str, body: dict[str, Any], *, priority: Priority
    ) -> dict[str, Any]:
        """POST to Rhombus and return the JSON object, or raise the matching RhombusError.

        Calls wait for the budget by `priority`: a person's lookup before a page, a page
        before one clip's poll.
        """
        if self._budget is not None:
            await self._budget.take(priority)
        # After the budget's wait too: a 429 may have come back while this call waited its turn.
        if (wait := self.paused_for) > 0:
            raise RateLimitedError(f"Rhombus asked us to wait {wait:.0f} s more", wait)
        try:
            response = await self._http.post(path, json=body)
        except httpx.TimeoutException as error:
            raise UnavailableError(f"Rhombus did not answer {path} in time") from error
        except httpx.HTTPError as error:
            raise UnavailableError(
                f"Rhombus could not be reached ({type(error).__name__})"
            ) from error

        self._check_status(path, response)
        try:
            answer = response.json()
        except ValueError as error:
            raise BadResponseError(
                f"Rhombus answered {path} with a body that is not JSON"
            ) from error
        if not isinstance(answer, dict):
            raise BadResponseError(f"Rhombus answered {path} with JSON that is not an object")
        # Rhombus reports domain failures inside a 200 body.
        if answer.get("error") is True:
            message = answer.get("errorMsg")
            raise RejectedError(
                message if isinstance(message, str) and message else "Rhombus reported an error"
            )
        return answer

    def _check_status(self, path: str, response: httpx.Response) -> None:
        status = response.status_code
        if status == 429:
            retry_after = _retry_after(response.headers.get("retry-after"))
            self._paused_until = max(self._paused_until, time.monotonic() + retry_after)
            logger.warning("Rhombus rate limit: pausing calls for %.0f s", retry_after)
            raise RateLimitedError(
                f"Rhombus is rate limiting; retry in {retry_after:.0f} s", retry_after
            )
        if status in {401, 403}:
            raise AuthenticationError(
                f"Rhombus refused the API key (HTTP {status}): check RHOMBUS_API_KEY, and that "
                "RHOMBUS_API_URL is the key's region (US api2.rhombussystems.com, "
                "EU api2.eu.rhombussystems.com)"
            )
        if status >= 500:
            raise UnavailableError(f"Rhombus failed on its side (HTTP {status}) for {path}")
        if status != 200:
            raise BadResponseError(f"Rhombus answered HTTP {status} for {path}")


def _parse(model: type[M], answer: dict[str, Any], operation: str) -> M:
    try:
        return model.model_validate(answer)
    except ValidationError as error:
        raise BadResponseError(
            f"Rhombus answered {operation} with JSON that does not match its spec"
        ) from error


def _retry_after(value: str | None) -> float:
    """Seconds from a Retry-After header (delta-seconds or HTTP date); 1 s when absent or odd."""
    if not value:
        return DEFAULT_RETRY_AFTER
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = email.utils.parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError):
            return DEFAULT_RETRY_AFTER
    if seconds != seconds:  # NaN  # noqa: PLR0124
        return DEFAULT_RETRY_AFTER
    return min(MAX_RETRY_AFTER, max(DEFAULT_RETRY_AFTER, seconds))


@functools.cache
def _tls() -> ssl.SSLContext:
    """The TLS settings every client shares (httpx loads the CA bundle per client otherwise)."""
    return httpx.create_ssl_context()
