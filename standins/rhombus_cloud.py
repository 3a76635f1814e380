"""Rhombus's API host for one region: several organisations on one port, each reached by its key.

Rhombus serves every organisation of a region from one host (api2.rhombussystems.com for the US,
api2.eu.rhombussystems.com for the EU); a key works only in its own region. `RhombusCloud` is
that host: it holds `RhombusSimulator` organisations, each with its own key, clips, cameras,
token bucket and faults, and hands each request to the organisation its credentials name:

- `x-auth-scheme: api-token` or `api`: the organisation whose API key `x-auth-apikey` is.
- `partner-api-token` or `partner-api`: a partner's key, acting for the client organisation
  named in `x-auth-org` among those the partner manages (RHOMBUS.md, partner keys).

What no organisation takes is answered as the single simulator answers it: 401
`{"authenticationFailed": true}` without a key or a known scheme, else 403 Access Denied (a key
this region does not know, a partner's client it does not manage, or no `x-auth-org`). A second
`RhombusCloud` is another region: a key of the first is unknown there.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Self

from aiohttp import web

from standins.rhombus import (
    _EXCHANGE,
    _FORBIDDEN,
    API_PATHS,
    AUTH_SCHEMES,
    MEDIA_PATH,
    PARTNER_SCHEMES,
    Exchange,
    RhombusSimulator,
    _json,
    _json_or_none,
    _record_answer,
)
from standins.rhombus_splicing import SPLICING_PATHS

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

MAX_BODY_BYTES = 1024 * 1024


class RhombusCloud:
    """One region's API host serving several simulated organisations."""

    def __init__(self, region: str = "US") -> None:
        """An empty region: add organisations with `add_org`, partners with `add_partner`."""
        self.region = region
        # Requests no organisation took (no key, unknown key, unmanaged client), as answered.
        self.refused: list[Exchange] = []
        self._orgs: list[RhombusSimulator] = []
        self._by_key: dict[str, RhombusSimulator] = {}
        self._by_uuid: dict[str, RhombusSimulator] = {}
        self._partners: dict[str, set[str]] = {}  # partner key -> client org uuids
        self._runner: web.AppRunner | None = None
        self._url: str | None = None

    # --- Organisations and partners

    def add_org(self, org: RhombusSimulator) -> RhombusSimulator:
        """Serve `org` here, reached by its `api_key` (and by partners, through its `org_uuid`)."""
        if org.api_key in self._by_key or org.api_key in self._partners:
            raise ValueError("another organisation or partner here has that key")
        if org.org_uuid is not None and org.org_uuid in self._by_uuid:
            raise ValueError(f"organisation {org.org_uuid} is already served here")
        self._orgs.append(org)
        self._by_key[org.api_key] = org
        if org.org_uuid is not None:
            self._by_uuid[org.org_uuid] = org
        return org

    def add_partner(self, api_key: str, clients: Iterable[RhombusSimulator]) -> None:
        """A partner's key, acting for each of `clients` (served here, with an `org_uuid`)."""
        if api_key in self._by_key or api_key in self._partners:
            raise ValueError("another organisation or partner here has that key")
        uuids = set()
        for client in clients:
            if client.org_uuid is None or self._by_uuid.get(client.org_uuid) is not client:
                raise ValueError("a partner's client is an organisation served here, with a uuid")
            uuids.add(client.org_uuid)
        self._partners[api_key] = uuids

    @property
    def orgs(self) -> list[RhombusSimulator]:
        """The organisations served here, in the order they were added."""
        return list(self._orgs)

    @property
    def exchanges(self) -> list[Exchange]:
        """Every request the region received: each organisation's, then the refused ones."""
        return [exchange for org in self.orgs for exchange in org.exchanges] + self.refused

    # --- Serving

    @property
    def url(self) -> str:
        """The base URL of the running server, like http://127.0.0.1:54321."""
        if self._url is None:
            raise RuntimeError("the region is not running: start() it first")
        return self._url

    def app(self) -> web.Application:
        """A fresh aiohttp application serving the region."""
        application = web.Application(client_max_size=MAX_BODY_BYTES)
        for path in (*API_PATHS, *SPLICING_PATHS):
            application.router.add_post(path, self._serve)
        application.router.add_get(MEDIA_PATH, self._serve)
        return application

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve on `host`:`port` (0: any free port); return the base URL."""
        if self._runner is not None:
            raise RuntimeError("the region is already running")
        runner = web.AppRunner(
            self.app(), access_log=None, handler_cancellation=True, shutdown_timeout=1.0
        )
        await runner.setup()
        try:
            await web.TCPSite(runner, host, port).start()
        except OSError:
            await runner.cleanup()
            raise
        self._runner = runner
        self._url = f"http://{host}:{runner.addresses[0][1]}"
        return self._url

    async def stop(self) -> None:
        """Stop serving; safe to call when not running."""
        runner, self._runner, self._url = self._runner, None, None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> Self:
        """Start serving on a free port of 127.0.0.1."""
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        """Stop serving."""
        await self.stop()

    async def _serve(self, request: web.Request) -> web.StreamResponse:
        org = self._route(request.headers)
        if isinstance(org, RhombusSimulator):
            return await org.serve_admitted(request)
        exchange = Exchange(
            method=request.method,
            path=request.path,
            headers={name.lower(): value for name, value in request.headers.items()},
            at=time.monotonic(),
        )
        request[_EXCHANGE] = exchange
        exchange.body = await request.read()
        exchange.json = _json_or_none(exchange.body)
        _record_answer(exchange, org)
        self.refused.append(exchange)
        return org

    def _route(self, headers: Mapping[str, str]) -> RhombusSimulator | web.Response:
        """The organisation the credentials act for, or the refusal Rhombus answers."""
        key, scheme = headers.get("x-auth-apikey"), headers.get("x-auth-scheme")
        if not key or scheme not in AUTH_SCHEMES:
            return _json(401, {"authenticationFailed": True})
        if scheme in PARTNER_SCHEMES:
            client = headers.get("x-auth-org")
            clients = self._partners.get(key)
            if clients is not None and client in clients:
                return self._by_uuid[client]
        elif (org := self._by_key.get(key)) is not None:
            return org
        return _json(403, dict(_FORBIDDEN))
