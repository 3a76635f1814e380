"""One region's Rhombus host serving several organisations, each reached by its own key."""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx
import pytest

from standins.rhombus import (
    CAMERA_STATES_PATH,
    GET_CLIP_PATH,
    LIST_CLIPS_PATH,
    Fault,
    ManualClock,
    RhombusSimulator,
    media_bytes,
    stays,
)
from standins.rhombus_cloud import RhombusCloud
from tests.contract.openapi import validate_exchange

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

EPOCH = 1_767_225_600.0
ACME_KEY, GLOBEX_KEY, PARTNER_KEY, EU_KEY = "acme-key", "globex-key", "partner-key", "eu-key"
ACME, GLOBEX, INITECH = "AcmeOrg000000000000000", "GlobexOrg0000000000000", "InitechOrg000000000000"
ACME_CLIP, GLOBEX_CLIP = "AcmeClip00000000000000", "GlobexClip000000000000"
ACME_CAMERA = "AcmeCamera000000000000"
FORBIDDEN = {"status": 403, "error": "Forbidden", "msg": "Access Denied"}


def org(key: str, uuid: str, clock: ManualClock, **options: object) -> RhombusSimulator:
    """An organisation with its own key and uuid on the shared clock."""
    return RhombusSimulator(api_key=key, org_uuid=uuid, clock=clock, epoch=EPOCH, **options)  # type: ignore[arg-type]


@pytest.fixture
def clock() -> ManualClock:
    """A clock that moves only when a test moves it."""
    return ManualClock()


@pytest.fixture
async def us(clock: ManualClock) -> AsyncIterator[RhombusCloud]:
    """The US region: Acme and Globex with keys of their own, Initech reached by a partner."""
    cloud = RhombusCloud("US")
    acme = cloud.add_org(org(ACME_KEY, ACME, clock))
    globex = cloud.add_org(org(GLOBEX_KEY, GLOBEX, clock))
    initech = cloud.add_org(org("initech-key", INITECH, clock))
    cloud.add_partner(PARTNER_KEY, [globex, initech])
    acme.add_clip(ACME_CLIP, title="Acme lobby", script=stays("COMPLETE", "Complete", 100))
    acme.add_camera(ACME_CAMERA, "Acme gate")
    globex.add_clip(GLOBEX_CLIP, title="Globex dock")
    async with cloud:
        yield cloud
    for exchange in cloud.exchanges:
        if exchange.path.startswith("/api/"):  # the spec describes the API host alone
            validate_exchange(exchange)


def auth(key: str, scheme: str = "api-token", client_org: str | None = None) -> dict[str, str]:
    """Rhombus's credential headers."""
    headers = {"x-auth-apikey": key, "x-auth-scheme": scheme}
    if client_org is not None:
        headers["x-auth-org"] = client_org
    return headers


async def post(
    url: str, path: str, body: object, headers: dict[str, str]
) -> tuple[int, dict[str, object]]:
    """POST to the region; the status and JSON answer."""
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=5) as http:
        response = await http.post(path, json=body)
    return response.status_code, response.json() if response.status_code != 429 else {}


async def clip_titles(url: str, headers: dict[str, str]) -> list[str]:
    """The titles of the organisation's clips the credentials reach."""
    status, answer = await post(url, LIST_CLIPS_PATH, {"pageSize": 10}, headers)
    assert 200 == status, answer
    return [clip["title"] for clip in answer["savedClips"]]  # type: ignore[attr-defined]


async def test_each_key_reaches_its_own_organisation(us: RhombusCloud) -> None:
    """Acme's key sees Acme's clips and cameras, Globex's key Globex's, and not each other's."""
    assert ["Acme lobby"] == await clip_titles(us.url, auth(ACME_KEY))
    assert ["Globex dock"] == await clip_titles(us.url, auth(GLOBEX_KEY, "api"))

    _, cameras = await post(us.url, CAMERA_STATES_PATH, {}, auth(ACME_KEY))
    assert "Acme gate" in [c["name"] for c in cameras["cameraStates"]]  # type: ignore[attr-defined]
    _, answer = await post(us.url, GET_CLIP_PATH, {"clipUuid": ACME_CLIP}, auth(GLOBEX_KEY))
    assert (True, "Clip not found") == (answer["error"], answer["errorMsg"])
    acme, globex, _ = us.orgs
    assert (2, 2) == (len(acme.exchanges), len(globex.exchanges))


async def test_credentials_no_organisation_takes_are_refused_as_one_simulator_does(
    us: RhombusCloud,
) -> None:
    """No key or scheme: 401; a key the region does not know: 403 Access Denied."""
    assert (401, {"authenticationFailed": True}) == await post(
        us.url, LIST_CLIPS_PATH, {"pageSize": 1}, {"x-auth-scheme": "api-token"}
    )
    assert (403, FORBIDDEN) == await post(us.url, LIST_CLIPS_PATH, {"pageSize": 1}, auth("nope"))
    assert [401, 403] == [exchange.status for exchange in us.refused]
    us.refused.clear()  # the 401 left the spec on purpose (no x-auth-apikey)


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        (auth(PARTNER_KEY, "partner-api-token", GLOBEX), 200),
        (auth(PARTNER_KEY, "partner-api", INITECH), 200),
        (auth(PARTNER_KEY, "partner-api-token"), 403),  # no client named
        (auth(PARTNER_KEY, "partner-api-token", ACME), 403),  # not its client
        (auth(PARTNER_KEY, "partner-api-token", "NoSuchOrg0000000000000"), 403),
        (auth(PARTNER_KEY), 403),  # a partner key is not an organisation's API key
        (auth(GLOBEX_KEY, "partner-api-token", GLOBEX), 403),  # nor the reverse
    ],
)
async def test_a_partner_key_acts_for_the_clients_it_manages(
    us: RhombusCloud, headers: dict[str, str], status: int
) -> None:
    """A partner key reaches the client named in x-auth-org among its own; else Access Denied."""
    answer = await post(us.url, LIST_CLIPS_PATH, {"pageSize": 5}, headers)
    assert status == answer[0]
    if status == 403:
        assert FORBIDDEN == answer[1]


async def test_a_partner_sees_the_client_organisations_own_clips(us: RhombusCloud) -> None:
    """Through the partner key, Globex's clips are Globex's, and count in Globex's exchanges."""
    headers = auth(PARTNER_KEY, "partner-api-token", GLOBEX)
    assert ["Globex dock"] == await clip_titles(us.url, headers)
    _, globex, initech = us.orgs
    assert ([PARTNER_KEY], []) == (
        [exchange.headers["x-auth-apikey"] for exchange in globex.exchanges],
        initech.exchanges,
    )


async def test_a_key_works_only_in_its_own_region(clock: ManualClock, us: RhombusCloud) -> None:
    """An EU region on its own port knows EU keys only: a US key there is Access Denied."""
    eu = RhombusCloud("EU")
    eu.add_org(org(EU_KEY, "EuOrg00000000000000000", clock))
    async with eu:
        assert (403, FORBIDDEN) == await post(
            eu.url, LIST_CLIPS_PATH, {"pageSize": 1}, auth(ACME_KEY)
        )
        assert [] == await clip_titles(eu.url, auth(EU_KEY))
    assert (403, FORBIDDEN) == await post(us.url, LIST_CLIPS_PATH, {"pageSize": 1}, auth(EU_KEY))
    for exchange in eu.exchanges:
        validate_exchange(exchange)


async def test_each_organisation_has_its_own_bucket_and_faults(clock: ManualClock) -> None:
    """Acme throttled or failing leaves Globex's calls alone."""
    cloud = RhombusCloud()
    acme = cloud.add_org(org(ACME_KEY, ACME, clock, rate_limit_per_second=1, rate_limit_burst=1))
    cloud.add_org(org(GLOBEX_KEY, GLOBEX, clock))
    async with cloud:
        statuses = [
            (await post(cloud.url, LIST_CLIPS_PATH, {"pageSize": 1}, auth(key)))[0]
            for key in (ACME_KEY, ACME_KEY, GLOBEX_KEY, GLOBEX_KEY)
        ]
        acme.inject(Fault("server_error", times=-1))
        statuses += [
            (await post(cloud.url, LIST_CLIPS_PATH, {"pageSize": 1}, auth(key)))[0]
            for key in (GLOBEX_KEY,)
        ]
    assert [200, 429, 200, 200, 200] == statuses
    assert ["200", "429"] == [str(exchange.status) for exchange in acme.exchanges]


async def test_media_comes_from_the_organisation_that_holds_the_clip(us: RhombusCloud) -> None:
    """A complete clip's mp4 downloads with its organisation's key; another's key finds nothing."""
    acme = us.orgs[0]
    size = acme.clip_json(ACME_CLIP)["byteCount"]
    url = f"{us.url}/media/metadata/us-west-2/{ACME_CLIP}.mp4"
    async with httpx.AsyncClient(timeout=5) as http:
        own = await http.get(url, headers=auth(ACME_KEY))
        other = await http.get(url, headers=auth(GLOBEX_KEY))
    assert (200, media_bytes(ACME_CLIP, size)) == (own.status_code, own.content)
    assert 404 == other.status_code


def test_keys_and_clients_are_unambiguous(clock: ManualClock) -> None:
    """Two organisations with one key, or a partner of an organisation not served, are refused."""
    cloud = RhombusCloud()
    acme = cloud.add_org(org(ACME_KEY, ACME, clock))
    with pytest.raises(ValueError, match="key"):
        cloud.add_org(org(ACME_KEY, GLOBEX, clock))
    with pytest.raises(ValueError, match="already served"):
        cloud.add_org(org(GLOBEX_KEY, ACME, clock))
    with pytest.raises(ValueError, match="key"):
        cloud.add_partner(ACME_KEY, [acme])
    with pytest.raises(ValueError, match="client"):
        cloud.add_partner(PARTNER_KEY, [org("x", INITECH, clock)])
