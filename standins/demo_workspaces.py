"""The demo's second part: one bot installed into two workspaces, each with its own Rhombus.

The real bot runs in distribution mode (SLACK_CLIENT_ID set) against the Slack stand-in, which
installs it with OAuth into Acme and Globex, and two Rhombus regions: Acme's organisation in the
US, Globex's in the EU. An admin connects each from the App Home; each follows a clip to its end;
Globex then uninstalls the app while another of its clips is being followed. Every Slack call
and every Rhombus call the stand-ins received is then counted by the token and key it carried.
"""

from __future__ import annotations

import asyncio
import html
import json
import re
import secrets
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO
from urllib.parse import urlsplit

import httpx

from bot.clips import Ending
from bot.config import Settings
from bot.connect_view import (
    ACTION_CONNECT,
    CLIENT_ACTION,
    CLIENT_BLOCK,
    DISCONNECT_ACTION,
    DISCONNECT_BLOCK,
    KEY_ACTION,
    KEY_BLOCK,
    KIND_ACTION,
    KIND_BLOCK,
    REGION_ACTION,
    REGION_BLOCK,
)
from bot.runtime import Bot
from bot.secret_box import SecretBox
from bot.store import TrackingState
from standins.demo_text import blocks_as_text, json_list, plain
from standins.rhombus import LOADING_DOCK_CAMERA as DOCK_CAMERA
from standins.rhombus import LOBBY_CAMERA, RhombusSimulator, completes, stays
from standins.rhombus_cloud import RhombusCloud
from standins.slack import ChannelSpec, SlackSimulator
from standins.slack_oauth import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET
from standins.slack_requests import (
    Origin,
    SlackRequest,
    app_home_opened,
    event_callback,
    home_action,
    post,
    slash_command,
    view_submission,
)

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from standins.slack import Call

_SIGNING_SECRET = secrets.token_hex(16)
# Where Slack sends installs back; the demo's browser replays that to the bot on 127.0.0.1.
_PUBLIC_URL = "https://clips.example.com"
_ADMIN = "U0ALICE"
_TIMEOUT_SECONDS = 60.0
_ADD_TO_SLACK = re.compile(r'href="([^"]*oauth/v2/authorize[^"]*)"')
_HEADING = re.compile(r"<h2>([^<]*)</h2>")
_ONWARD = re.compile(r'URL=([^"]*)"')


@dataclass(frozen=True)
class _Site:
    """A workspace of the demo, its channel, and the Rhombus organisation it connects."""

    name: str
    team_id: str
    channel_id: str
    region: str
    api_key: str
    clip_id: str  # followed to its end
    title: str

    @property
    def origin(self) -> Origin:
        """Where @alice types in this workspace."""
        return Origin(
            user_id=_ADMIN,
            team_id=self.team_id,
            team_domain=self.name.lower(),
            channel_id=self.channel_id,
            channel_name="general",
        )

    @property
    def key_tail(self) -> str:
        """The key as the Home shows it: its last 4 characters."""
        return "…" + self.api_key[-4:]


# Globex's second clip, still uploading when Globex uninstalls the app.
_UNFINISHED_CLIP = "GlobexYardGate0000000A"
_UPLOADING = stays("UPLOADING", "Uploading video", 35)


def _sites() -> tuple[_Site, _Site]:
    """Acme, with its organisation in the US, and Globex, in the EU; each key made anew."""
    acme = _Site(
        "Acme",
        "T0ACME",
        "C0ACME",
        "US",
        "rk-acme-us-" + secrets.token_hex(12),
        "AcmeFrontDoor00000000A",
        "Front door: visitor badge",
    )
    globex = _Site(
        "Globex",
        "T0GLOBEX",
        "C0GLOBEX",
        "EU",
        "rk-globex-eu-" + secrets.token_hex(12),
        "GlobexDockPallet00000A",
        "Dock: pallet drop",
    )
    return acme, globex


async def run_workspaces_demo(speed: float = 1.0, out: TextIO = sys.stdout) -> bool:
    """Install into Acme and Globex, connect each one's Rhombus, follow clips, uninstall Globex."""
    step_seconds = max(0.5, 4.0 / max(speed, 0.01))
    acme_site, globex_site = _sites()
    us, eu = RhombusCloud("US"), RhombusCloud("EU")
    orgs = {
        acme_site.team_id: us.add_org(
            RhombusSimulator(api_key=acme_site.api_key, org_uuid="AcmeOrg000000000000000")
        ),
        globex_site.team_id: eu.add_org(
            RhombusSimulator(api_key=globex_site.api_key, org_uuid="GlobexOrg0000000000000")
        ),
    }
    slack = SlackSimulator(
        bot_token="xoxb-unused-" + secrets.token_hex(8),
        team_id=acme_site.team_id,
        team_domain="acme",
        channels={acme_site.channel_id: ChannelSpec("general")},
    )
    slack.add_workspace(
        globex_site.team_id, "globex", {globex_site.channel_id: ChannelSpec("general")}
    )
    slack.oauth.redirect_uri = f"{_PUBLIC_URL}/slack/oauth_redirect"
    slack.views.people[_ADMIN].is_admin = True
    with tempfile.TemporaryDirectory(prefix="rhombus-clip-bot-demo-") as folder:
        async with us, eu, slack:
            settings = Settings(
                _env_file=None,
                slack_client_id=DEFAULT_CLIENT_ID,
                slack_client_secret=DEFAULT_CLIENT_SECRET,
                slack_signing_secret=_SIGNING_SECRET,
                slack_api_url=slack.api_url,
                public_url=_PUBLIC_URL,
                encryption_keys=SecretBox.new_key(),
                rhombus_api_url=us.url,
                rhombus_media_url=us.url,
                rhombus_eu_api_url=eu.url,
                rhombus_eu_media_url=eu.url,
                deliver_video=False,
                deliver_thumbnail=False,
                database_url=f"sqlite:///{Path(folder) / 'demo.db'}",
                poll_interval_seconds=min(1.0, step_seconds / 4),
                host="127.0.0.1",
                port=0,
            )
            printer = _Printer(out, {s.channel_id: s.name for s in (acme_site, globex_site)})
            slack.on_call = printer.call
            bot = await Bot.start(settings)
            try:
                out.write(
                    "\n\nPart 2: one bot, many workspaces. The same bot with SLACK_CLIENT_ID set:\n"
                    "any workspace installs it with OAuth and connects its own Rhombus "
                    "organisation\n"
                    f"(US region: {us.url}, EU region: {eu.url}).\n"
                )
                regions = {"US": us, "EU": eu}
                demo = _Demo(
                    bot=bot,
                    slack=slack,
                    out=out,
                    regions=regions,
                    sites=(acme_site, globex_site),
                    orgs=orgs,
                )
                finished = await demo.run(step_seconds)
            finally:
                await bot.stop()
    return finished


class _Demo:
    """The steps of the second part, against a running bot."""

    def __init__(  # noqa: PLR0913  # the running bot and each stand-in it talks to
        self,
        *,
        bot: Bot,
        slack: SlackSimulator,
        out: TextIO,
        regions: dict[str, RhombusCloud],
        sites: tuple[_Site, _Site],
        orgs: dict[str, RhombusSimulator],
    ) -> None:
        self._bot = bot
        self._acme, self._globex = sites
        self._orgs = orgs  # team id -> the Rhombus organisation it connects
        self._slack = slack
        self._out = out
        self._regions = regions
        self._tokens: dict[str, str] = {}  # team id -> the bot token its install was given

    async def run(self, step_seconds: float) -> bool:
        """Every step in turn; whether every clip's tracking ended as the story says."""
        acme, globex = self._acme, self._globex
        for site in (acme, globex):
            await self._install(site)
        self._say(f"\n@alice in {acme.name} #general: /clip {acme.clip_id}")
        self._ephemeral(acme, await self._told(acme, acme.clip_id))
        for site in (acme, globex):
            await self._connect(site)
        # Each clip is saved in Rhombus as it is asked for: its clock starts then.
        # Globex's first is done before Acme's: the bot goes on serving Acme once Globex is gone.
        trackings: dict[str, str | None] = {}
        for site, clip_id, title, script, camera in (
            (acme, acme.clip_id, acme.title, completes(step_seconds), LOBBY_CAMERA),
            (globex, globex.clip_id, globex.title, completes(step_seconds / 2), DOCK_CAMERA),
            (globex, _UNFINISHED_CLIP, "Yard gate: late delivery", _UPLOADING, DOCK_CAMERA),
        ):
            self._orgs[site.team_id].add_clip(
                clip_id, title=title, script=script, device_uuids=[camera]
            )
            self._say(f"\n@alice in {site.name} #general: /clip {clip_id}")
            await self._send(
                slash_command(clip_id, response_url=self._slack.response_url(), origin=site.origin)
            )
            trackings[clip_id] = await self._tracking(site, clip_id)
        if not await self._until_finished(trackings[globex.clip_id]):
            return self._stopped(f"{globex.name}'s clip did not finish in time")
        before = await self._uninstall(globex, trackings[_UNFINISHED_CLIP])
        if before is None:
            return self._stopped(f"{globex.name}'s uninstall did not end its tracking and secrets")
        if not await self._until_finished(trackings[acme.clip_id]):
            return self._stopped(f"{acme.name}'s clip did not finish in time")
        await self._bot.tracker.drain(2.0)
        self._isolation(before)
        self._say(
            "\nDone: each workspace's clip reached its end, and Globex's uninstall ended "
            "its other one."
        )
        return True

    # --- Steps

    async def _install(self, site: _Site) -> None:
        """Open "Add to Slack", approve in the workspace, come back to the bot."""
        bot_url = f"http://127.0.0.1:{self._bot.port}"
        self._say(
            f"\n@alice in {site.name}: opens {bot_url}/slack/install, presses [Add to Slack] "
            "and allows the app on Slack's page"
        )
        async with httpx.AsyncClient(base_url=bot_url, trust_env=False) as browser:
            page = await browser.get("/slack/install")
            found = _ADD_TO_SLACK.search(page.text)
            if found is None:
                self._say(f"  The install page has no [Add to Slack] link ({page.status_code})")
                return
            before = set(self._slack.bot_tokens)
            back = urlsplit(
                self._slack.oauth.approve_install(
                    html.unescape(found.group(1)), team_id=site.team_id, user_id=_ADMIN
                )
            )
            # Bolt's state cookie is Secure: a browser sends it back over PUBLIC_URL's https.
            cookie = page.headers.get("set-cookie", "").split(";", 1)[0]
            done = await browser.get(f"{back.path}?{back.query}", headers={"Cookie": cookie})
        heading = _HEADING.search(done.text)
        onward = _ONWARD.search(done.text)
        issued = [t for t in self._slack.bot_tokens if t not in before]
        if issued:
            self._tokens[site.team_id] = issued[0]
        self._say(
            f"  {back.scheme}://{back.netloc}{back.path} answers {done.status_code} "
            f"“{heading.group(1) if heading else '?'}” → "
            f"{html.unescape(onward.group(1)) if onward else '?'}"
        )
        self._say(
            f"  Installed in {site.name}: its bot token "
            f"…{issued[0][-4:] if issued else '(none)'} is stored, sealed"
        )

    async def _connect(self, site: _Site) -> None:
        """Open the App Home, press Connect Rhombus and submit the modal as an admin."""
        origin = site.origin
        self._say(f"\n@alice (a workspace admin) opens the app's Home in {site.name}")
        since = len(self._slack.calls_to("views.publish"))
        await self._send(event_callback(app_home_opened(origin=origin), origin=origin))
        self._home(site, await self._published(site, "Rhombus is not connected", since))
        opened = len(self._slack.views.opened)
        trigger = self._slack.views.trigger()
        await self._send(
            home_action(ACTION_CONNECT, "", view_id="V0HOME", trigger_id=trigger, origin=origin)
        )
        await self._slack.wait_for(lambda s: len(s.views.opened) > opened)
        kind = "API key of the organisation"
        self._say(
            f"@alice presses [Connect Rhombus]: key {site.key_tail}, region {site.region}, "
            f"{kind}; [Connect]"
        )
        modal = self._slack.views.opened[-1]
        since = len(self._slack.calls_to("views.publish"))
        answer = await self._send(
            view_submission(modal, _connect_values(site.api_key, site.region), origin=origin)
        )
        if answer.text:
            self._say(f"  The modal refuses: {answer.text}")
            return
        workspaces = self._bot.workspaces

        async def connected() -> bool | None:
            return _true_if(workspaces.organisation(site.team_id) is not None)

        # The modal closed; the workspace's organisation is built just after.
        await self._until(connected)
        self._home(site, await self._published(site, "Rhombus: ", since))

    async def _uninstall(self, site: _Site, tracking_id: str | None) -> _Counts | None:
        """Remove the app from the workspace mid-clip; the calls so far once the bot is done.

        None if the uninstall did not end the workspace's tracking or delete its secrets.
        """
        self._say(
            f"\n{site.name}'s admin removes the app, mid-clip: Slack revokes its token and "
            "sends app_uninstalled"
        )
        token = self._tokens.get(site.team_id)
        if token is not None:
            self._slack.revoke_token(token)
        await self._send(event_callback({"type": "app_uninstalled"}, origin=site.origin))
        bot = self._bot

        async def gone() -> bool | None:
            followed = bot.tracker.followed_in(lambda team: team == site.team_id)
            return _true_if(bot.workspaces.get(site.team_id) is None and not followed)

        await self._until(gone)
        done = _Counts.of(self._slack, self._regions, (self._acme, self._globex))
        tracking = None if tracking_id is None else await bot.store.get(tracking_id)
        ending = tracking.ending if tracking is not None else None
        distribution = bot.distribution
        installed = distribution is None or site.team_id in (
            await distribution.installations.teams()
        )
        key = distribution is None or await distribution.keys.get(site.team_id) is not None
        self._say(
            f"  {site.name} #general · message 2: tracking ended "
            f"({ending.value if ending else 'not ended'}); the message stays as last shown"
        )
        self._say(
            f"  {site.name}'s bot token {'still stored' if installed else 'deleted'}, "
            f"its Rhombus key {'still stored' if key else 'deleted'}"
        )
        return done if ending == Ending.UNINSTALLED and not installed and not key else None

    def _isolation(self, before: _Counts) -> None:
        """Every call the stand-ins received, by the workspace whose token or key it carried."""
        sites = (self._acme, self._globex)
        now = _Counts.of(self._slack, self._regions, sites)
        self._say("\nEvery call the stand-ins received, by the token or key it carried:")
        for site in sites:
            token = self._tokens.get(site.team_id, "")
            strays = now.strays[site.team_id]
            where = "all into its own channels" if not strays else f"{strays} into another's!"
            self._say(
                f"  {site.name:<7}Slack: {now.slack[site.team_id]} calls with {site.name}'s "
                f"token …{token[-4:]}, {where}"
            )
            regions = ", ".join(
                f"{n} calls to {region}"
                for (region, key), n in sorted(now.rhombus.items())
                if key == site.api_key
            )
            self._say(f"  {'':<7}Rhombus: {regions} with {site.name}'s key {site.key_tail}")
        if now.unclaimed:
            self._say(f"  {now.unclaimed} calls carried no workspace's token or key!")
        after = [now.since(before, site) for site in sites]
        self._say(f"  Calls after Globex's uninstall: {', '.join(after)}")

    # --- Talking to the bot and waiting

    async def _send(self, request: SlackRequest) -> httpx.Response:
        url = f"http://127.0.0.1:{self._bot.port}/slack/events"
        return await post(url, request, signing_secret=_SIGNING_SECRET)

    async def _told(self, site: _Site, text: str) -> str:
        """Type `/clip text`; what @alice alone is told."""
        before = len(self._slack.ephemerals)
        await self._send(
            slash_command(text, response_url=self._slack.response_url(), origin=site.origin)
        )
        await self._slack.wait_for(lambda s: len(s.ephemerals) > before)
        return self._slack.ephemerals[before].text

    async def _published(self, site: _Site, showing: str, since: int = 0) -> list[str]:
        """The lines of the workspace's Home, once the bot has published one showing `showing`.

        Only the Homes published after the first `since` are looked at.
        """

        def home(call: Call) -> list[str]:
            view = call.args.get("view")
            if isinstance(view, str):
                view = json.loads(view)
            blocks = view.get("blocks") if isinstance(view, dict) else None
            return blocks_as_text(blocks or [])

        def shown(slack: SlackSimulator) -> list[str] | None:
            for call in reversed(slack.calls_to("views.publish")[since:]):
                if call.ok and call.team == site.team_id:
                    lines = home(call)
                    if any(showing in line for line in lines):
                        return lines
            return None

        await self._slack.wait_for(lambda slack: shown(slack) is not None)
        return shown(self._slack) or []

    async def _until(self, check: Callable[[], Awaitable[Any]]) -> Any:  # noqa: ANN401
        """What `check` answers once it answers something, or None after the timeout."""
        deadline = time.monotonic() + _TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if (found := await check()) is not None:
                return found
            await asyncio.sleep(0.1)
        return None

    async def _tracking(self, site: _Site, clip_id: str) -> str | None:
        """The id of @alice's tracking of the clip in the workspace, once the bot has stored it."""
        store = self._bot.store

        async def stored() -> str | None:
            mine = await store.of_requester(site.team_id, _ADMIN, finished_since=0.0)
            found = [t.id for t in mine if t.clip_id == clip_id and t.channel_id == site.channel_id]
            return found[0] if found else None

        tracking_id: str | None = await self._until(stored)
        return tracking_id

    async def _until_finished(self, tracking_id: str | None) -> bool:
        """Whether the tracking finished before the timeout."""
        store = self._bot.store

        async def finished() -> bool | None:
            tracking = None if tracking_id is None else await store.get(tracking_id)
            return _true_if(tracking is not None and tracking.state == TrackingState.FINISHED)

        return tracking_id is not None and await self._until(finished) is not None

    # --- Printing

    def _say(self, line: str) -> None:
        self._out.write(line + "\n")
        self._out.flush()

    def _stopped(self, why: str) -> bool:
        self._say(f"\nStopped: {why}.")
        return False

    def _ephemeral(self, site: _Site, text: str) -> None:
        self._say(f"\n── {site.name} #general · only visible to @alice ──\n  {plain(text)}")

    def _home(self, site: _Site, lines: list[str]) -> None:
        """The top of the Home: whether Rhombus is connected."""
        self._say(f"── {site.name} · App Home " + "─" * 40)
        for line in [line for line in lines if line.startswith("Rhombus")][:1]:
            self._say(f"  {line}")


def _true_if(condition: bool) -> bool | None:  # noqa: FBT001
    """True, or None: what `_Demo._until` waits for."""
    return True if condition else None


@dataclass
class _Counts:
    """Calls the stand-ins received: Slack's by workspace, Rhombus's by region and key."""

    slack: Counter[str]
    strays: Counter[str]  # Slack calls naming a channel of another workspace than the token's
    rhombus: Counter[tuple[str, str]]
    unclaimed: int  # calls with no workspace's token or key
    asked: Counter[tuple[str, str]]  # (team id, Slack method or Rhombus path): every call

    @classmethod
    def of(
        cls, slack: SlackSimulator, regions: dict[str, RhombusCloud], sites: tuple[_Site, ...]
    ) -> _Counts:
        """Count every call so far."""
        teams: Counter[str] = Counter()
        strays: Counter[str] = Counter()
        asked: Counter[tuple[str, str]] = Counter()
        unclaimed = 0
        for call in slack.calls:
            if call.method == "oauth.v2.access":
                continue  # an install's exchange: the app's own credentials, no token yet
            if call.team is None:
                unclaimed += 1
                continue
            teams[call.team] += 1
            asked[call.team, call.method] += 1
            channel = call.args.get("channel") or call.args.get("channel_id")
            if channel and slack.channel_teams.get(str(channel), slack.team_id) != call.team:
                strays[call.team] += 1
        keys: Counter[tuple[str, str]] = Counter()
        teams_by_key = {site.api_key: site.team_id for site in sites}
        for region, cloud in regions.items():
            for exchange in cloud.exchanges:
                key = exchange.headers.get("x-auth-apikey", "")
                keys[region, key] += 1
                if key in teams_by_key:
                    asked[teams_by_key[key], exchange.path] += 1
                else:
                    unclaimed += 1
        return cls(teams, strays, keys, unclaimed, asked)

    def since(self, earlier: _Counts, site: _Site) -> str:
        """How many calls of the workspace there were since `earlier`, and which if any."""
        new = Counter(
            {what: n for (team, what), n in self.asked.items() if team == site.team_id}
        ) - Counter({what: n for (team, what), n in earlier.asked.items() if team == site.team_id})
        which = ", ".join(f"{what}: {n}" for what, n in sorted(new.items()))
        return f"{new.total()} for {site.name}" + (
            f" ({which})" if which and new.total() < 4 else ""
        )


class _Printer:
    """Prints each status message as posted, then each edit in one line, by workspace."""

    def __init__(self, out: TextIO, workspaces: dict[str, str]) -> None:
        self._out = out
        self._workspaces = workspaces  # channel id -> workspace name
        self._names: dict[str, str] = {}

    def call(self, call: Call) -> None:
        if not call.ok or call.method not in {"chat.postMessage", "chat.update"}:
            return
        args = call.args
        channel = str(args.get("channel") or "")
        workspace = self._workspaces.get(channel, channel)
        ts = str((call.response or {}).get("ts") or args.get("ts") or "")
        if args.get("thread_ts"):
            return  # replies to the status messages: not part of this story
        key = f"{channel}/{ts}"
        count = sum(name.startswith(workspace) for name in self._names.values())
        self._names.setdefault(key, f"{workspace} #general · message {count + 1}")
        posted = call.method == "chat.postMessage"
        blocks = args.get("blocks")
        if isinstance(blocks, str):
            blocks = json_list(blocks)
        lines = blocks_as_text(blocks or []) or [plain(str(args.get("text") or ""))]
        status = _status_lines(lines)
        if posted:
            label = f"{self._names[key]}, posted"
            self._out.write(f"\n── {label} " + "─" * max(0, 50 - len(label)) + "\n")
            for line in lines[:1] + status:
                self._out.write(f"  {line}\n")
        else:
            self._out.write(f"── {self._names[key]}, edited: {' '.join(status)}\n")
        self._out.flush()


def _status_lines(lines: list[str]) -> list[str]:
    """The status under a message's title, and its progress bar if it has one: what changes."""
    status = lines[1:2]
    bar = [line for line in lines[2:3] if line[:1] in {"▰", "▱"}]
    return status + bar


def _connect_values(key: str, region: str) -> dict[str, Any]:
    """The Connect Rhombus modal's state.values as Slack sends them: an API key, no client."""

    def radio(value: str) -> dict[str, Any]:
        return {
            "type": "radio_buttons",
            "selected_option": {"value": value, "text": {"type": "plain_text", "text": value}},
        }

    return {
        KEY_BLOCK: {KEY_ACTION: {"type": "plain_text_input", "value": key}},
        REGION_BLOCK: {REGION_ACTION: radio(region)},
        KIND_BLOCK: {KIND_ACTION: radio("api")},
        CLIENT_BLOCK: {CLIENT_ACTION: {"type": "plain_text_input", "value": None}},
        DISCONNECT_BLOCK: {DISCONNECT_ACTION: {"type": "checkboxes", "selected_options": []}},
    }
