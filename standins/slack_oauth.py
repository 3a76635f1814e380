"""The fake Slack's OAuth: the consent page, `oauth.v2.access`, refresh tokens, expiring tokens.

As Slack documents them (https://docs.slack.dev/authentication/installing-with-oauth,
https://docs.slack.dev/reference/methods/oauth.v2.access,
https://docs.slack.dev/authentication/using-token-rotation): a code is single-use and lasts ten
minutes; the redirect_uri given to the exchange must be the one the consent page was opened with;
with token rotation a bot token expires after 12 hours (`expires_in: 43200`) and each refresh
token is exchanged once, for a new access token and a new refresh token.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final
from urllib.parse import parse_qsl, urlencode, urlsplit

from aiohttp import web

from standins.slack import Json, Workspace, _Method, _SlackError

if TYPE_CHECKING:
    from collections.abc import Callable

    from standins.slack import SlackSimulator

CODE_SECONDS: Final = 600.0  # "The code expires after ten minutes"
TOKEN_LIFETIME_SECONDS: Final = 43_200  # with token rotation: 12 hours
DEFAULT_CLIENT_ID: Final = "1234567890.0987654321"
DEFAULT_CLIENT_SECRET: Final = "sim-client-secret"  # noqa: S105 - the fake's own, not a secret
_APP_ID: Final = "A0SIM"


@dataclass(frozen=True)
class _Grant:
    """What a person approved on the consent page, waiting to be exchanged for a token."""

    team_id: str
    user_id: str
    scope: str
    redirect_uri: str | None  # as given to the consent page, if it was
    issued_at: float
    org_wide: bool = False  # for a whole Enterprise Grid organisation: team_id is its id


@dataclass(frozen=True)
class _Refresh:
    """A refresh token: the workspace it is for and the scopes its tokens carry."""

    team_id: str
    scope: str


class SlackOAuth:
    """The app's credentials, the codes handed out by the consent page, and the tokens issued."""

    def __init__(
        self,
        slack: SlackSimulator,
        *,
        client_id: str = DEFAULT_CLIENT_ID,
        client_secret: str = DEFAULT_CLIENT_SECRET,
        clock: Callable[[], float],
    ) -> None:
        self._slack = slack
        self.client_id = client_id
        self.client_secret = client_secret
        # The app's registered Redirect URL (None: any, when the consent page names one).
        self.redirect_uri: str | None = None
        # Whether the app has token rotation turned on: tokens then expire and come with a
        # refresh token.
        self.token_rotation = False
        self.token_lifetime = TOKEN_LIFETIME_SECONDS  # expires_in of the tokens issued next
        self._clock = clock
        self._grants: dict[str, _Grant] = {}
        self._refresh_tokens: dict[str, _Refresh] = {}
        self._expires_at: dict[str, float] = {}  # access token -> when it stops working

    def methods(self) -> dict[str, _Method]:
        """The Web API methods served here."""
        return {"oauth.v2.access": _Method(self._oauth_v2_access, credentials=True)}

    def routes(self) -> list[web.RouteDef]:
        """slack.com's consent page, which the bot's "Add to Slack" link opens."""
        return [web.get("/oauth/v2/authorize", self._handle_authorize)]

    # -- what tests look at and provoke ---------------------------------------------------------

    def approve_install(
        self,
        authorize_url: str,
        *,
        team_id: str | None = None,
        user_id: str = "U0ALICE",
        cancel: bool = False,
        org_wide: str | None = None,
    ) -> str:
        """Where Slack sends the browser after a person answers the consent page.

        `authorize_url` is the "Add to Slack" link (any host: only its query counts). The answer
        is the redirect URL with `code` and `state`, or with `error=access_denied` when `cancel`;
        ValueError names Slack's error when the link itself is wrong (unknown client id, a
        redirect_uri that is not the app's). `org_wide` is an Enterprise Grid organisation's
        id: its admin installs the app for the whole organisation (an org-wide install).
        """
        if org_wide is not None:
            self._slack.workspaces.setdefault(org_wide, Workspace(org_wide, org_wide.lower()))
        status, location_or_error = self._consent(
            dict(parse_qsl(urlsplit(authorize_url).query)),
            team_id=org_wide or team_id or self._slack.team_id,
            user_id=user_id,
            cancel=cancel,
            org_wide=org_wide is not None,
        )
        if status != 302:
            raise ValueError(location_or_error)
        return location_or_error

    def expire_token(self, token: str) -> None:
        """Make an access token expire now: calls with it answer token_expired."""
        self._expires_at[token] = self._clock()

    def expired(self, token: str) -> bool:
        """Whether the access token was issued to expire, and has."""
        expires_at = self._expires_at.get(token)
        return expires_at is not None and self._clock() >= expires_at

    # -- the consent page ------------------------------------------------------------------------

    async def _handle_authorize(self, request: web.Request) -> web.StreamResponse:
        # A person approves at once, for the workspace the link preselects (`team`) or the
        # default one; tests choosing another person or cancelling use approve_install.
        query = dict(request.query)
        team_id = query.get("team") or self._slack.team_id
        status, location_or_error = self._consent(
            query, team_id=team_id, user_id="U0ALICE", cancel=False, org_wide=False
        )
        if status == 302:
            raise web.HTTPFound(location_or_error)
        return web.Response(
            status=status,
            text=f"<!DOCTYPE html><html><body><h1>Something went wrong</h1>"
            f"<p>{location_or_error}</p></body></html>",
            content_type="text/html",
        )

    def _consent(
        self, query: dict[str, str], *, team_id: str, user_id: str, cancel: bool, org_wide: bool
    ) -> tuple[int, str]:
        """(302, the redirect) or (400, Slack's error) for a consent page opened with `query`."""
        if query.get("client_id") != self.client_id:
            return 400, "invalid_client_id"
        asked = query.get("redirect_uri") or None
        redirect_uri = asked or self.redirect_uri
        if redirect_uri is None or (
            self.redirect_uri is not None and asked not in {None, self.redirect_uri}
        ):
            return 400, "bad_redirect_uri"
        if team_id not in self._slack.workspaces:
            return 400, "team_not_found"
        answer: dict[str, str] = {}
        if cancel:
            answer["error"] = "access_denied"
        else:
            code = (
                f"{secrets.randbelow(10**12)}.{secrets.randbelow(10**12)}.{secrets.token_hex(16)}"
            )
            self._grants[code] = _Grant(
                team_id, user_id, query.get("scope", ""), asked, self._clock(), org_wide
            )
            answer["code"] = code
        if "state" in query:
            answer["state"] = query["state"]
        separator = "&" if urlsplit(redirect_uri).query else "?"
        return 302, f"{redirect_uri}{separator}{urlencode(answer)}"

    # -- oauth.v2.access -------------------------------------------------------------------------

    def _oauth_v2_access(self, args: Json) -> Json:
        if args.get("client_id") != self.client_id:
            raise _SlackError("invalid_client_id")
        if args.get("client_secret") != self.client_secret:
            raise _SlackError("bad_client_secret")
        grant_type = args.get("grant_type") or "authorization_code"
        if grant_type == "refresh_token":
            return self._refresh(str(args.get("refresh_token") or ""))
        if grant_type != "authorization_code":
            raise _SlackError("invalid_grant_type")
        grant = self._grants.pop(str(args.get("code") or ""), None)  # single-use
        if grant is None or self._clock() - grant.issued_at > CODE_SECONDS:
            raise _SlackError("invalid_code")
        given = args.get("redirect_uri") or None
        if given != grant.redirect_uri and (grant.redirect_uri or given != self.redirect_uri):
            # Must be the consent page's, if it had one; else none, or the app's own.
            raise _SlackError("bad_redirect_uri")
        body = self._issue(grant.team_id, grant.scope)
        if grant.org_wide:
            # An org-wide install names the organisation and no workspace.
            body |= {
                "team": None,
                "enterprise": body["team"],
                "is_enterprise_install": True,
            }
        return body | {"authed_user": {"id": grant.user_id}}

    def _refresh(self, refresh_token: str) -> Json:
        # "The refresh token is then revoked": a second exchange of the same one fails.
        refresh = self._refresh_tokens.pop(refresh_token, None)
        if refresh is None:
            raise _SlackError("invalid_refresh_token")
        return self._issue(refresh.team_id, refresh.scope)

    def _issue(self, team_id: str, scope: str) -> Json:
        workspace = self._slack.workspaces[team_id]
        secret = secrets.token_hex(12)
        if not self.token_rotation:
            token = f"xoxb-{secrets.randbelow(10**12)}-{secrets.randbelow(10**12)}-{secret}"
        else:
            token = f"xoxe.xoxb-1-{secrets.token_hex(40)}"
        self._slack.add_bot_token(token, team_id)
        body: Json = {
            "ok": True,
            "access_token": token,
            "token_type": "bot",
            "scope": scope or ",".join(sorted(self._slack.scopes)),
            "bot_user_id": self._slack.bot_user_id,
            "app_id": _APP_ID,
            "team": {"id": team_id, "name": workspace.name},
            # A workspace of an Enterprise Grid organisation names it too.
            "enterprise": None
            if workspace.enterprise_id is None
            else {"id": workspace.enterprise_id, "name": workspace.enterprise_id.capitalize()},
            "is_enterprise_install": False,
        }
        if self.token_rotation:
            refresh_token = f"xoxe-1-{secrets.token_hex(48)}"
            self._refresh_tokens[refresh_token] = _Refresh(team_id, body["scope"])
            self._expires_at[token] = self._clock() + self.token_lifetime
            body |= {"refresh_token": refresh_token, "expires_in": self.token_lifetime}
        return body
