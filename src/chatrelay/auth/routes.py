"""The login routes: ``GET /api/auth``, ``POST /api/login``, ``POST /api/logout``.

``/api/auth`` tells the web UI which mode it faces (no credentials needed);
login and logout exist in ``accounts`` mode only (404 elsewhere).
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Sequence
from typing import Literal

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field
from typing_extensions import TypedDict

from chatrelay.auth.accounts import SESSION_COOKIE, AccountsAuthenticator
from chatrelay.auth.passwords import MAX_PASSWORD_CHARS
from chatrelay.exceptions import NotAuthenticated, NotFound, RateLimited
from chatrelay.gateway.services import GatewayServices

router = APIRouter()

HTTPS = "https"


class LoginBody(BaseModel):
    """``POST /api/login``."""

    username: str = Field(min_length=1, max_length=128)
    password: str = Field(min_length=1, max_length=MAX_PASSWORD_CHARS)


class LoginAnswer(TypedDict):
    """A successful login: who, and until when the cookie is valid (Unix seconds)."""

    user_id: str
    admin: bool
    expires_at: float


class SignedInUser(TypedDict):
    """Who the request's credentials name."""

    user_id: str
    admin: bool


class AuthModeAnswer(TypedDict):
    """``GET /api/auth``: the mode, and the user when the request's credentials are valid."""

    mode: Literal["dev", "jwt", "accounts"]
    user: SignedInUser | None


def _services(request: Request) -> GatewayServices:
    services: GatewayServices = request.app.state.services
    return services


def _accounts(services: GatewayServices) -> AccountsAuthenticator:
    if not isinstance(services.auth, AccountsAuthenticator):
        raise NotFound("logins exist in accounts mode only (CHATRELAY_AUTH_MODE=accounts)")
    return services.auth


def client_address(request: Request, trusted_proxies: Sequence[str]) -> str:
    """The caller's address: the TCP peer, or, when the peer is a trusted proxy, the
    address its ``X-Forwarded-For`` names.

    The header is read from the right (what the nearest proxy appended), past
    every trusted proxy: whatever a client wrote further left is its own claim.
    """
    networks = [ipaddress.ip_network(network, strict=False) for network in trusted_proxies]

    def trusted(address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in networks)

    address = request.client.host if request.client else "unknown"
    hops = [hop.strip() for hop in request.headers.get("x-forwarded-for", "").split(",")]
    for hop in reversed([hop for hop in hops if hop]):
        if not trusted(address):
            break
        address = hop
    return address


async def _take_login_token(services: GatewayServices, key: str) -> None:
    settings = services.settings
    wait = await services.engine.coordination.take_token(
        key, settings.login_rate_burst, settings.login_rate_per_second
    )
    if wait > 0:
        seconds = math.ceil(wait)
        raise RateLimited(f"too many login attempts; retry in {seconds} s", retry_after=seconds)


def _is_https(request: Request) -> bool:
    proto = request.headers.get("x-forwarded-proto", request.url.scheme)
    return proto.split(",")[0].strip().lower() == HTTPS


@router.get("/api/auth")
async def get_auth_mode(request: Request) -> AuthModeAnswer:
    """Which auth mode this server runs, and who the caller is, if anyone.

    Never 401: the web UI asks it first, to choose between its login page
    (accounts mode, no valid cookie) and the chat.
    """
    services = _services(request)
    user: SignedInUser | None = None
    try:
        principal = services.auth.authenticate(request)
    except NotAuthenticated:
        pass  # nobody signed in: the login page
    else:
        user = {"user_id": principal.user_id, "admin": principal.admin}
    return {"mode": services.settings.auth_mode, "user": user}


@router.post("/api/login")
async def post_login(body: LoginBody, request: Request, response: Response) -> LoginAnswer:
    """Check a name and password; set the session cookie. 401 for any wrong pair, 429 when
    a name or an address has tried too often."""
    services = _services(request)
    accounts = _accounts(services)
    address = client_address(request, services.settings.trusted_proxies)
    await _take_login_token(services, f"login-address:{address}")
    await _take_login_token(services, f"login-name:{body.username}")
    principal = await accounts.login(body.username, body.password)
    response.set_cookie(
        SESSION_COOKIE,
        accounts.session_token(principal),
        max_age=int(accounts.session_ttl),
        path="/",
        httponly=True,
        samesite="strict",
        secure=_is_https(request),
    )
    assert principal.expires_at is not None
    return {
        "user_id": principal.user_id,
        "admin": principal.admin,
        "expires_at": principal.expires_at,
    }


@router.post("/api/logout", status_code=204)
async def post_logout(request: Request) -> Response:
    """Clear the session cookie (the JWT in it stays valid until it expires)."""
    _accounts(_services(request))
    response = Response(status_code=204)
    response.delete_cookie(
        SESSION_COOKIE, path="/", httponly=True, samesite="strict", secure=_is_https(request)
    )
    return response
