"""MCP authorization discovery as a generator of HTTP requests (no I/O here).

The flow yields ``httpx2.Request`` objects and is sent the matching ``httpx2.Response``; the
caller owns the sockets (the pattern of httpx's ``Auth.auth_flow``). :func:`drive` runs a flow
with any ``send`` function, so tests can feed recorded exchanges.

Steps: PRM (RFC 9728, see :mod:`broker.oauth.prm`), then the first authorization server's
metadata (RFC 8414 / OIDC, see :mod:`broker.oauth.as_metadata`). Without PRM the server follows
the 2025-03-26 revision: the authorization server lives at the server's origin.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import TypeVar

import httpx2

from broker.errors import DiscoveryError, ResourceMismatch, UnsafeEndpoint
from broker.oauth.as_metadata import (
    AuthServer,
    as_metadata_urls,
    build_as_metadata_request,
    fallback_auth_server,
    handle_as_metadata_response,
)
from broker.oauth.endpoints import check_endpoint
from broker.oauth.prm import ResourceInfo, build_prm_request, handle_prm_response, prm_urls
from broker.oauth.providers import ProviderProfile, profile_for
from broker.oauth.resource import canonical_resource, origin_of
from broker.oauth.www_authenticate import BearerChallenge

logger = logging.getLogger(__name__)

T = TypeVar("T")
Flow = Generator[httpx2.Request, httpx2.Response, T]


@dataclass(frozen=True)
class Discovered:
    """Where and how to sign in for one MCP server."""

    server_url: str
    #: The ``resource`` to request tokens for: the PRM ``resource`` exactly as published
    #: (RFC 9728 §3.3), or without PRM the canonical server URI (:mod:`broker.oauth.resource`).
    resource: str
    auth_server: AuthServer
    prm: ResourceInfo | None = None

    @property
    def issuer(self) -> str:
        return self.auth_server.issuer


def discover(
    server_url: str, challenge: BearerChallenge | None = None, profile: str | None = None
) -> Flow[Discovered]:
    """Discover the authorization server for ``server_url``; ``profile`` forces a provider."""
    prm: ResourceInfo | None = None
    metadata_url = challenge.resource_metadata if challenge else None
    # Why a more specific document was passed over: when a less specific one then fails, this
    # is the reason to report (its "resource mismatch" would only hide it).
    passed_over = _unsafe_metadata_url(metadata_url)
    canonical = canonical_resource(server_url)
    for url in prm_urls(server_url, metadata_url):
        response = yield build_prm_request(url)
        try:
            prm = handle_prm_response(response, server_url)
        except ResourceMismatch as exc:
            if passed_over:
                raise DiscoveryError(f"{canonical}: {'; '.join(passed_over)}") from exc
            raise
        if prm is not None:
            break
        if response.is_redirect:
            location = response.headers.get("location", "")[:200]
            passed_over.append(
                f"its resource metadata at {url} redirects to {location!r}, which the broker "
                "does not follow (the document must be served at that URL)"
            )
    if prm is None:
        origin = origin_of(server_url)
        if passed_over:
            logger.warning("%s: %s", canonical, "; ".join(passed_over))
        logger.info("no resource metadata for %s; using the 2025-03-26 rules", canonical)
        chosen = profile_for(origin, profile)
        found = yield from find_auth_server(origin, chosen)
        return Discovered(canonical, canonical, found or fallback_auth_server(origin, chosen))
    if not prm.authorization_servers:
        raise DiscoveryError(f"{canonical} names no authorization server")
    issuer = check_endpoint(prm.authorization_servers[0], "authorization server")
    found = yield from find_auth_server(issuer, profile_for(issuer, profile))
    if found is None:
        raise DiscoveryError(f"no authorization server metadata found for {issuer}")
    return Discovered(canonical, prm.resource, found, prm)


def _unsafe_metadata_url(url: str | None) -> list[str]:
    try:
        if url:
            check_endpoint(url, "resource_metadata")
    except UnsafeEndpoint as exc:
        return [f"its 401 names resource metadata at an unsafe URL ({exc})"]
    return []


def find_auth_server(issuer: str, profile: ProviderProfile) -> Flow[AuthServer | None]:
    for url in as_metadata_urls(issuer):
        found = handle_as_metadata_response((yield build_as_metadata_request(url)), issuer, profile)
        if found is not None:
            return found
    return None


def drive(flow: Flow[T], send: Callable[[httpx2.Request], httpx2.Response]) -> T:
    """Run a flow to completion, sending each request with ``send``."""
    try:
        request = next(flow)
        while True:
            request = flow.send(send(request))
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
