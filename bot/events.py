"""The Events API: each event acted on once, however often Slack delivers it."""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from slack_bolt.response import BoltResponse

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

# Slack retries an event up to three times within minutes; far fewer ids than this arrive in
# that time, so one seen before is recognised.
REMEMBERED_EVENTS = 10_000


class OnceEach:
    """A Bolt middleware that drops an event whose `event_id` was already handled.

    Slack delivers an event again (HTTP `X-Slack-Retry-Num`, a Socket Mode envelope's
    `retry_attempt`) when it did not see the answer in time, though the bot may have acted on it
    (https://docs.slack.dev/apis/events-api/#retries).
    """

    def __init__(self, remembered: int = REMEMBERED_EVENTS) -> None:
        self._remembered = remembered
        self._seen: OrderedDict[str, None] = OrderedDict()

    async def check(
        self,
        body: dict[str, Any],
        next: Callable[[], Awaitable[BoltResponse]],  # noqa: A002  # the name Bolt passes it by
    ) -> BoltResponse:
        """Pass the request on, unless it is an event already seen."""
        event_id = body.get("event_id") if body.get("type") == "event_callback" else None
        if isinstance(event_id, str) and event_id:
            if event_id in self._seen:
                return BoltResponse(status=200, body="")
            self._seen[event_id] = None
            if len(self._seen) > self._remembered:
                self._seen.popitem(last=False)
        return await next()
