"""What the bot does, counted for Prometheus: polls and their lateness, Rhombus and Slack calls."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from apscheduler.events import EVENT_JOB_SUBMITTED, JobSubmissionEvent
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.jobs import is_polling_job

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping

    import httpx
    from apscheduler.schedulers.base import BaseScheduler
    from prometheus_client import Metric
    from slack_sdk.web.async_slack_response import AsyncSlackResponse

    from bot.rhombus import RhombusClient
    from bot.shards import ShardHolder

# Taking a shard's work over: milliseconds for a few trackings, seconds for thousands.
HANDOVER_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# A poll is due every few seconds: lateness worth seeing runs from milliseconds to a minute.
LATENESS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class Metrics:
    """The bot's counters, in a registry of its own (several bots may run in one test process)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.polls = Counter(
            "clipbot_polls", "Polls of followed clips started.", registry=self.registry
        )
        self.poll_lateness = Histogram(
            "clipbot_poll_lateness_seconds",
            "How long after it was due each poll started.",
            buckets=LATENESS_BUCKETS,
            registry=self.registry,
        )
        self.rhombus_calls = Counter(
            "clipbot_rhombus_calls", "Calls sent to Rhombus.", ["path"], registry=self.registry
        )
        self.rhombus_rate_limited = Counter(
            "clipbot_rhombus_rate_limited",
            "Rhombus calls answered 429.",
            ["path"],
            registry=self.registry,
        )
        self.slack_calls = Counter(
            "clipbot_slack_calls",
            "Slack Web API calls the bot made (chat.update: status message edits).",
            ["method"],
            registry=self.registry,
        )
        self.slack_rate_limited = Counter(
            "clipbot_slack_rate_limited",
            "Slack Web API calls answered 429.",
            ["method"],
            registry=self.registry,
        )

        self.handover_seconds = Histogram(
            "clipbot_handover_seconds",
            "From taking shards' locks to following their trackings, unfurls and deliveries.",
            buckets=HANDOVER_BUCKETS,
            registry=self.registry,
        )

    def exposition(self) -> bytes:
        """Every metric in Prometheus' text format."""
        return generate_latest(self.registry)

    def watch_scheduler(self, scheduler: BaseScheduler) -> None:
        """Count each polling job as the scheduler starts it, and how late it starts."""

        def submitted(event: JobSubmissionEvent) -> None:
            if not is_polling_job(event.job_id):
                return
            self.polls.inc()
            due = min(event.scheduled_run_times)
            self.poll_lateness.observe(max(0.0, (datetime.now(UTC) - due).total_seconds()))

        scheduler.add_listener(submitted, EVENT_JOB_SUBMITTED)

    def watch_rhombus(self, rhombus: RhombusClient) -> None:
        """Count every call to Rhombus and every 429 it answers."""

        async def sent(request: httpx.Request) -> None:
            self.rhombus_calls.labels(request.url.path).inc()

        async def answered(response: httpx.Response) -> None:
            if response.status_code == 429:  # HTTP's Too Many Requests
                self.rhombus_rate_limited.labels(response.request.url.path).inc()

        rhombus.add_hooks(request=sent, response=answered)

    def watch_state(
        self, *, live: Callable[[], int], edits_waiting: Callable[[], Mapping[str, int]]
    ) -> None:
        """Read the live trackings and each workspace's queued edits at every scrape."""
        self.registry.register(_StateCollector(live, edits_waiting))

    def watch_shards(self, shards: ShardHolder) -> None:
        """Read the shards held, and how many changed hands, at every scrape."""
        self.registry.register(_ShardCollector(shards))


class MeteredWebClient(AsyncWebClient):
    """Slack's Web API client, counting every call and every 429 by method."""

    def __init__(self, metrics: Metrics, **kwargs: Any) -> None:  # noqa: ANN401  # AsyncWebClient's
        super().__init__(**kwargs)
        self._metrics = metrics

    async def api_call(self, api_method: str, **kwargs: Any) -> AsyncSlackResponse:  # noqa: ANN401
        """Make the call (AsyncWebClient's every method comes through here) and count it."""
        self._metrics.slack_calls.labels(api_method).inc()
        try:
            return await super().api_call(api_method, **kwargs)
        except SlackApiError as error:
            if error.response.status_code == 429:  # HTTP's Too Many Requests
                self._metrics.slack_rate_limited.labels(api_method).inc()
            raise


class _StateCollector(Collector):
    """Gauges read from the running bot when Prometheus scrapes."""

    def __init__(
        self, live: Callable[[], int], edits_waiting: Callable[[], Mapping[str, int]]
    ) -> None:
        self._live = live
        self._edits_waiting = edits_waiting

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            "clipbot_trackings_live", "Trackings this process follows now.", value=self._live()
        )
        waiting = GaugeMetricFamily(
            "clipbot_slack_edits_waiting",
            "Status message edits waiting in each workspace's queue.",
            labels=["team"],
        )
        for team, count in sorted(self._edits_waiting().items()):
            waiting.add_metric([team], count)
        yield waiting

    def describe(self) -> Iterator[Metric]:
        return iter(())


class _ShardCollector(Collector):
    """The replica's shards, read when Prometheus scrapes."""

    def __init__(self, shards: ShardHolder) -> None:
        self._shards = shards

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            "clipbot_shards_held",
            "Shards of workspaces this replica follows.",
            value=len(self._shards.held),
        )
        yield CounterMetricFamily(
            "clipbot_shard_handovers",
            "Shards this replica took or gave up since it started.",
            value=self._shards.handovers,
        )

    def describe(self) -> Iterator[Metric]:
        return iter(())
