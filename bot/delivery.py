"""The finished clip in Slack: its video uploaded into the status message's thread, exactly once.

When a followed clip is complete, the tracker hands it over here instead of sending the thread
reply itself. A delivery downloads the mp4 from Rhombus, uploads it into the thread with the
reply's text as its comment, or, when it cannot, posts the text reply with one line saying why.
At most `concurrency` deliveries move bytes at once; they run beside the polls, never in them.

Exactly once across crashes: each step is recorded (`bot.delivery_rows`) before it is taken.
A file Slack gave an id but that was never completed is dropped by Slack, so a restart from
PENDING or UPLOADING starts over; from SHARING it asks Slack whether the file is shared and
completes it only if not (Slack completes a file at most once); from REPLYING it looks for the
marked reply in the thread before posting it.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bot.budget import Backoff
from bot.deliverable import (
    NOT_FOR_THE_CHANNEL,
    filename,
    media_line,
    refusal_line,
    why_not,
)
from bot.delivery_rows import Delivery, DeliveryState
from bot.media import (
    MediaError,
    downloaded,
    media_url,
    remove_leftovers,
    transfer_seconds,
)
from bot.slack_files import Done, Later, Refused, Share, SlackFiles, Ticket
from bot.store import StoreError
from bot.workspaces import NotConnectedError

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    import httpx

    from bot.blocks import JsonBlock, RenderedMessage
    from bot.clips import Clip
    from bot.delivery_rows import DeliveryRows
    from bot.store import Tracking
    from bot.thumbnail import Thumbnails
    from bot.workspaces import Workspaces

logger = logging.getLogger(__name__)

ATTEMPTS = 4  # tries of a step that fails for passing reasons, before the text reply
RETRY_BACKOFF = Backoff(0.5, 4.0, 300.0)  # 1-2 s, 4-8 s, 16-32 s


@dataclass(frozen=True)
class DeliverySettings:
    """What the bot delivers, from where, and how much at once."""

    max_bytes: int
    concurrency: int = 2
    post_restricted_clips: bool = False
    video: bool = True  # False: the text reply, as without this module


class _StartOver:
    """The upload must start again: Slack no longer has the file, so never shared it."""


_START_OVER = _StartOver()


class _Passing(Exception):  # noqa: N818  # not an error: a step to try again
    """A step failed for a reason that may pass."""


class Deliveries:
    """Carries out deliveries, a few at a time; resumes them after a restart."""

    def __init__(  # noqa: PLR0913
        self,
        *,
        rows: DeliveryRows,
        workspaces: Workspaces,
        uploads: httpx.AsyncClient,
        thumbnails: Thumbnails | None = None,
        settings: DeliverySettings,
        clock: Callable[[], float] = time.time,
        backoff: Backoff = RETRY_BACKOFF,
    ) -> None:
        self._rows = rows
        self._workspaces = workspaces
        self._uploads = uploads  # the connection pool clips' bytes go to Slack through
        self._thumbnails = thumbnails  # None: no thumbnail in the status message
        self._settings = settings
        self._clock = clock
        self._backoff = backoff
        self._slots = asyncio.Semaphore(settings.concurrency)
        self._running: dict[str, asyncio.Task[None]] = {}
        self._teams: dict[str, str] = {}  # the workspace of each delivery under way

    async def hand_over(
        self,
        tracking: Tracking,
        clip: Clip | None,
        reply: RenderedMessage,
        status: RenderedMessage,
    ) -> None:
        """Record the delivery of a complete clip (once per tracking), then start it.

        `reply` is the thread reply announcing it; `status` the final status message.
        """
        delivery = Delivery.of(
            tracking, clip, reply, status, reason=self._why_not(clip), now=self._clock()
        )
        if await self._rows.add(delivery):
            logger.info("delivering clip %s", tracking.clip_id, extra=delivery.log_context)
        else:
            delivery = await self._rows.get(tracking.id) or delivery
        self._start(delivery)

    async def resume(self, teams: Callable[[str], bool] | None = None) -> int:
        """Start every unfinished delivery of the workspaces `teams` accepts (default: all).

        How many were started: those under way here already are left as they are.
        """
        unfinished = [
            delivery
            for delivery in await self._rows.unfinished()
            if (teams is None or teams(delivery.team_id))
            and delivery.tracking_id not in self._running
        ]
        for delivery in unfinished:
            self._start(delivery)
        if unfinished:
            logger.info("resumed %d delivery(ies)", len(unfinished))
        return len(unfinished)

    async def let_go(self, teams: Callable[[str], bool]) -> int:
        """Stop those workspaces' deliveries under way here; how many there were.

        Each resumes from its row on the replica that follows its workspace next, as after a
        crash: every step was recorded before it was taken.
        """
        tasks = [
            task for tracking_id, task in self._running.items() if teams(self._teams[tracking_id])
        ]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        return len(tasks)

    async def close(self) -> None:
        """Stop every delivery under way; each resumes from its row at the next start."""
        tasks = list(self._running.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def idle(self) -> None:
        """Wait until no delivery is under way (for tests and the demo)."""
        while self._running:
            await asyncio.gather(*self._running.values(), return_exceptions=True)

    def _start(self, delivery: Delivery) -> None:
        if delivery.tracking_id in self._running or DeliveryState(delivery.state).is_done:
            return
        task = asyncio.create_task(self._run(delivery), name=f"delivery-{delivery.tracking_id}")
        self._running[delivery.tracking_id] = task
        self._teams[delivery.tracking_id] = delivery.team_id
        task.add_done_callback(lambda _: self._ended(delivery.tracking_id))

    def _ended(self, tracking_id: str) -> None:
        self._running.pop(tracking_id, None)
        self._teams.pop(tracking_id, None)

    def _files(self, delivery: Delivery) -> SlackFiles:
        """Slack's file calls with the bot token of the delivery's workspace."""
        client = self._workspaces.slack(delivery.team_id)
        if client is None:
            raise NotConnectedError(delivery.team_id)
        return SlackFiles(client, self._uploads)

    def _why_not(self, clip: Clip | None) -> str | None:
        """Why the clip's video will not be uploaded, as one plain line; None if it will."""
        if not self._settings.video:
            return ""  # turned off: the text reply, with nothing to explain
        return why_not(
            clip,
            max_bytes=self._settings.max_bytes,
            post_restricted_clips=self._settings.post_restricted_clips,
        )

    # --- The steps --------------------------------------------------------------------------

    async def _run(self, delivery: Delivery) -> None:
        try:
            await self._carry_out(delivery)
        except NotConnectedError:
            # Uninstalled, or Rhombus disconnected: nothing can reach the thread any more.
            logger.warning(
                "delivery dropped: the workspace is not installed or has no Rhombus connected",
                extra=delivery.log_context,
            )
            await self._save(delivery, DeliveryState.REPLIED)
        except StoreError as error:
            # The row says where it stopped; the next start carries on from there.
            logger.error("delivery stopped: %s", error, extra=delivery.log_context)  # noqa: TRY400
        except Exception:
            # Its row stays where it got to: the next start carries on from there.
            logger.exception("delivery failed", extra=delivery.log_context)

    async def _carry_out(self, delivery: Delivery) -> None:
        state = DeliveryState(delivery.state)
        if state in {DeliveryState.PENDING, DeliveryState.UPLOADING}:
            remove_leftovers(delivery.tracking_id)  # a killed process's temporary files
        thumbnail = None
        if (
            state in {DeliveryState.PENDING, DeliveryState.UPLOADING}
            and self._thumbnails is not None
            and delivery.thumbnail_id is None
            and delivery.region is not None
            and delivery.reason not in NOT_FOR_THE_CHANNEL
        ):
            # Beside the video, not before it: its edit waits for the workspace's edit budget.
            thumbnail = asyncio.create_task(self._thumbnails.show(delivery, delivery.region))
        try:
            await self._reply_or_video(delivery, state)
        except BaseException:
            if thumbnail is not None:
                thumbnail.cancel()
            raise
        if thumbnail is not None and (thumbnail_id := await thumbnail) is not None:
            delivery.thumbnail_id = thumbnail_id
            await self._save(delivery, DeliveryState(delivery.state))

    async def _reply_or_video(self, delivery: Delivery, state: DeliveryState) -> None:
        if state is DeliveryState.SHARING:
            shared = await self._share(delivery, uncertain=True)
            if shared is None:
                return
            if isinstance(shared, str):
                delivery.reason = shared
            else:
                state = DeliveryState.UPLOADING  # never shared: the upload starts again
        if state in {DeliveryState.PENDING, DeliveryState.UPLOADING} and delivery.reason is None:
            reason = await self._send_video(delivery)
            if reason is None:
                return
            delivery.reason = reason
        await self._reply(delivery)

    async def _send_video(self, delivery: Delivery) -> str | None:
        """Upload the video into the thread; None when it is there, else why not."""
        if delivery.channel_id.startswith("C"):
            # Slack shares files only where the bot is a member, chat:write.public or not.
            joined = await self._with_retries(delivery, "join", self._join, delivery)
            if joined is not None:
                return joined
        for _ in range(ATTEMPTS):
            uploaded = await self._with_retries(delivery, "upload", self._upload, delivery)
            if uploaded is not None:
                return uploaded
            shared = await self._share(delivery, uncertain=False)
            if not isinstance(shared, _StartOver):
                return shared
            logger.warning("Slack lost the upload; uploading again", extra=delivery.log_context)
        return "No video: Slack kept losing the upload."

    async def _join(self, delivery: Delivery) -> str | None:
        outcome = await self._files(delivery).join(delivery.channel_id)
        if isinstance(outcome, Later):
            raise _Passing(outcome.error)
        if isinstance(outcome, Refused) and outcome.error in {"is_archived", "channel_not_found"}:
            return refusal_line(outcome.error)
        return None  # a private channel cannot be joined: completing says whether the bot is in

    async def _upload(self, delivery: Delivery) -> str | None:
        """Download, then send the bytes to Slack; the temporary file goes whatever happens."""
        organisation = self._workspaces.rhombus(delivery.team_id)
        url = media_url(organisation.media_url, delivery.region or "", delivery.clip_id, "mp4")
        async with self._slots:
            try:
                async with downloaded(
                    organisation.client,
                    url,
                    key=delivery.tracking_id,
                    max_bytes=self._settings.max_bytes,
                    expected_size=delivery.byte_count,
                    expected_sha256=delivery.sha256,
                ) as file:
                    ticket = await self._files(delivery).upload_ticket(
                        filename(delivery.title, delivery.clip_id), file.size
                    )
                    if not isinstance(ticket, Ticket):
                        outcome: Done | Refused | Later = ticket
                    else:
                        delivery.file_id = ticket.file_id
                        await self._save(delivery, DeliveryState.UPLOADING)
                        outcome = await self._files(delivery).send_bytes(
                            ticket, file.path, file.size, seconds=transfer_seconds(file.size)
                        )
            except MediaError as error:
                if error.retryable:
                    raise _Passing(error.reason) from error
                return media_line(error.reason)
        if isinstance(outcome, Later):
            raise _Passing(outcome.error)
        if isinstance(outcome, Refused):
            return refusal_line(outcome.error)
        return None

    async def _share(self, delivery: Delivery, *, uncertain: bool) -> str | _StartOver | None:
        """Complete the upload in the thread; None once it is shared there, else why not.

        `uncertain`: a completion may already have reached Slack (a crash, a lost answer), so
        Slack is asked first. Slack completes a file at most once ("This method can only be
        called once", files.completeUploadExternal), and the bot completes a video only into
        its thread, so a file Slack has completed is the video in the thread, or about to be
        (Slack shares asynchronously: slackapi/bolt-js#2115). `_START_OVER` when Slack no
        longer has the upload, which was then never shared.
        """
        if delivery.file_id is None:
            return _START_OVER
        await self._save(delivery, DeliveryState.SHARING)
        known = False  # Slack has the file: a refused completion means it was completed before
        for attempt in range(1, ATTEMPTS + 1):
            if uncertain:
                share = await self._files(delivery).share_of(delivery.file_id, delivery.channel_id)
                if share is Share.SHARED:
                    await self._delivered(delivery)
                    return None
                if share is Share.UNKNOWN:
                    await asyncio.sleep(self._delay(attempt, None))
                    continue
                known = share is Share.UNSHARED
            outcome = await self._files(delivery).complete(
                delivery.file_id,
                title=delivery.title,
                channel_id=delivery.channel_id,
                thread_ts=delivery.thread_ts,
                comment=delivery.reply_text,
            )
            if isinstance(outcome, Done) or (isinstance(outcome, Refused) and known):
                await self._delivered(delivery)
                return None
            if isinstance(outcome, Refused):
                if outcome.error == "file_not_found":
                    return _START_OVER
                return refusal_line(outcome.error)
            uncertain = True
            await asyncio.sleep(self._delay(attempt, outcome.seconds))
        return "No video: Slack did not take the upload after several tries."

    async def _delivered(self, delivery: Delivery) -> None:
        await self._save(delivery, DeliveryState.DELIVERED)
        logger.info("video delivered into the thread", extra=delivery.log_context)

    async def _reply(self, delivery: Delivery) -> None:
        """Post the text reply with its reason line, once (it carries a mark to look for)."""
        reason = delivery.reason or ""
        looked = DeliveryState(delivery.state) is DeliveryState.REPLYING
        await self._save(delivery, DeliveryState.REPLYING)
        blocks: list[JsonBlock] = list(delivery.reply_blocks)
        text = delivery.reply_text
        if reason:
            blocks.append({"type": "context", "elements": [{"type": "plain_text", "text": reason}]})
            text = f"{text}\n{reason}"
        attempt = 0
        while True:
            attempt += 1
            if looked:
                found = await self._files(delivery).find_reply(
                    delivery.channel_id, delivery.thread_ts, delivery.tracking_id
                )
                if found:
                    break
            outcome = await self._files(delivery).reply(
                delivery.channel_id,
                delivery.thread_ts,
                text,
                blocks,
                delivery.tracking_id,
            )
            if isinstance(outcome, Done):
                break
            if isinstance(outcome, Refused):
                logger.warning(
                    "the text reply was refused (%s); giving up",
                    outcome.error,
                    extra=delivery.log_context,
                )
                break
            looked = True  # the post may have reached Slack
            await asyncio.sleep(self._delay(attempt, outcome.seconds))
        await self._save(delivery, DeliveryState.REPLIED)
        logger.info("text reply sent: %s", reason or "video off", extra=delivery.log_context)

    async def _with_retries(
        self,
        delivery: Delivery,
        step: str,
        action: Callable[[Delivery], Awaitable[str | None]],
        argument: Delivery,
    ) -> str | None:
        """Run a step, again with backoff while it fails for passing reasons."""
        for attempt in range(1, ATTEMPTS + 1):
            try:
                result = await action(argument)
            except _Passing as passing:
                logger.warning(
                    "delivery step %s failed (%s); attempt %d of %d",
                    step,
                    passing,
                    attempt,
                    ATTEMPTS,
                    extra=delivery.log_context,
                )
                if attempt == ATTEMPTS:
                    return "No video: fetching or uploading it kept failing; open it in Rhombus."
                await asyncio.sleep(self._delay(attempt, None))
            else:
                return result
        return None  # pragma: no cover

    def _delay(self, attempt: int, asked: float | None) -> float:
        if asked is not None:
            return asked
        return self._backoff.delay(attempt, random.random())  # noqa: S311  # spreading retries

    async def _save(self, delivery: Delivery, state: DeliveryState) -> None:
        delivery.state = state
        delivery.updated_at = self._clock()
        await self._rows.save(delivery)
