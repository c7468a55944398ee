"""Authentication modes (DESIGN.md section 8) behind one interface, ``auth.base.Authenticator``.

``CHATRELAY_AUTH_MODE`` chooses: ``dev`` (``auth/dev.py``), ``jwt``
(``auth/jwt.py``) or ``accounts`` (``auth/accounts.py``).
"""

from __future__ import annotations

import ipaddress

from chatrelay.auth.base import Authenticator, Principal
from chatrelay.config import Settings

LOOPBACK_NAMES = ("localhost",)


def create_authenticator(settings: Settings) -> Authenticator:
    """The authenticator of ``CHATRELAY_AUTH_MODE``; ``ValueError`` names a missing setting."""
    if settings.auth_mode == "dev":
        from chatrelay.auth.dev import DevAuthenticator

        return DevAuthenticator()
    if settings.auth_mode == "accounts":
        from chatrelay.auth.accounts import create_accounts_authenticator

        return create_accounts_authenticator(settings)
    from chatrelay.auth.jwt import Claims, JwksKeys, JwtAuthenticator, JwtVerifier

    claims = Claims(settings.jwt_audience, settings.jwt_issuer, settings.jwt_leeway_seconds)
    # An empty variable counts as unset (compose files pass `${X:-}`).
    jwks = JwksKeys(settings.jwt_jwks_url) if settings.jwt_jwks_url else None
    verifier = JwtVerifier(
        claims,
        secret=settings.jwt_secret or None,
        public_key=settings.jwt_public_key or None,
        jwks=jwks,
    )
    return JwtAuthenticator(verifier)


async def close_authenticator(auth: Authenticator) -> None:
    """Release what an authenticator holds (accounts mode's database connections)."""
    from chatrelay.auth.accounts import AccountsAuthenticator

    if isinstance(auth, AccountsAuthenticator):
        await auth.aclose()


def is_loopback(host: str) -> bool:
    """Whether listening on ``host`` reaches this machine only."""
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def exposed_dev_auth(settings: Settings) -> str | None:
    """Why this process must not start (dev auth off loopback, not allowed), or None."""
    if settings.auth_mode != "dev" or settings.allow_dev_auth or is_loopback(settings.host):
        return None
    return (
        f"refusing to listen on {settings.host} with CHATRELAY_AUTH_MODE=dev: dev mode lets "
        "any caller name any user. Set CHATRELAY_AUTH_MODE=jwt or accounts "
        "(docs/security.md), listen on 127.0.0.1, or set CHATRELAY_ALLOW_DEV_AUTH=1 "
        "to accept that risk."
    )


__all__ = [
    "Authenticator",
    "Principal",
    "close_authenticator",
    "create_authenticator",
    "exposed_dev_auth",
]
