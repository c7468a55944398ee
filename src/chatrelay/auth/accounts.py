"""``accounts`` mode: chatrelay's own users, a login, and a session cookie holding a JWT.

``POST /api/login`` (``auth/routes.py``) checks a password against the
``users`` table and sets an HttpOnly, SameSite=Strict cookie holding a
short-lived HS256 JWT signed with the server secret; every later request
(and socket upgrade) is verified by the ``jwt`` machinery, from that cookie
or from the same JWT as a Bearer token.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import time
from pathlib import Path

import jwt
from sqlalchemy.engine import make_url
from starlette.requests import HTTPConnection

from chatrelay.auth.base import Principal
from chatrelay.auth.jwt import ADMIN_ROLE, Claims, JwtAuthenticator, JwtVerifier
from chatrelay.auth.passwords import MAX_PASSWORD_CHARS, verify_password
from chatrelay.config import Settings
from chatrelay.exceptions import NotAuthenticated
from chatrelay.protocol.client_frames import valid_session_id
from chatrelay.store.users import UserStore

logger = logging.getLogger(__name__)

SESSION_COOKIE = "chatrelay_session"
SESSION_ISSUER = "chatrelay"
SESSION_AUDIENCE = "chatrelay-session"
SECRET_FILE = "secret"
SECRET_BYTES = 32
# Shorter secrets are guessable offline from one captured cookie.
MIN_SECRET_CHARS = 32
LOGIN_FAILED = "unknown user or wrong password"


def server_secret(settings: Settings) -> str:
    """``CHATRELAY_SECRET``, or the one generated next to the SQLite database.

    The generated file is created once (mode 0600) and read by every later
    start, and by every process sharing that folder. With any other
    database the nodes may sit on different machines: the secret must be set.
    """
    if settings.secret:  # an empty variable counts as unset
        if len(settings.secret) < MIN_SECRET_CHARS:
            raise ValueError(f"CHATRELAY_SECRET needs at least {MIN_SECRET_CHARS} characters")
        return settings.secret
    url = make_url(settings.database_url)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        raise ValueError(
            "accounts mode needs CHATRELAY_SECRET (the same on every node) "
            "unless the database is a SQLite file"
        )
    folder = Path(url.database).parent
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / SECRET_FILE
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text(encoding="ascii").strip()
    with os.fdopen(descriptor, "w", encoding="ascii") as file:
        file.write(secrets.token_urlsafe(SECRET_BYTES))
    logger.info("generated the server secret in %s", path)
    return path.read_text(encoding="ascii").strip()


class AccountsAuthenticator:
    """Authenticates by the session JWT; logs users in and mints that JWT."""

    def __init__(self, secret: str, users: UserStore, *, session_ttl: float, leeway: float) -> None:
        self.users = users
        self._secret = secret
        self.session_ttl = session_ttl
        verifier = JwtVerifier(
            Claims(audience=SESSION_AUDIENCE, issuer=SESSION_ISSUER, leeway=leeway),
            secret=secret,
        )
        self._jwt = JwtAuthenticator(verifier, cookie=SESSION_COOKIE)

    def authenticate(self, connection: HTTPConnection) -> Principal:
        return self._jwt.authenticate(connection)

    async def login(self, name: str, password: str) -> Principal:
        """The principal of a right name and password; else ``NotAuthenticated``.

        An unknown name and a wrong password get the same error after the
        same work (one argon2 verification), so neither tells which it was.
        """
        user = None
        if valid_session_id(name) and len(password) <= MAX_PASSWORD_CHARS:
            user = await self.users.get(name)
        # argon2 takes tens of milliseconds of CPU: off the event loop.
        ok = await asyncio.to_thread(
            verify_password, None if user is None else user.password_hash, password
        )
        if user is None or not ok:
            raise NotAuthenticated(LOGIN_FAILED)
        return Principal(user.name, admin=user.admin, expires_at=time.time() + self.session_ttl)

    def session_token(self, principal: Principal) -> str:
        """The signed session JWT of ``principal`` (expiring at its ``expires_at``)."""
        now = int(time.time())
        claims: dict[str, object] = {
            "sub": principal.user_id,
            "iss": SESSION_ISSUER,
            "aud": SESSION_AUDIENCE,
            "iat": now,
            "exp": int(principal.expires_at or now + self.session_ttl),
        }
        if principal.admin:
            claims["role"] = ADMIN_ROLE
        return jwt.encode(claims, self._secret, algorithm="HS256")

    async def aclose(self) -> None:
        await self.users.aclose()


def create_accounts_authenticator(settings: Settings) -> AccountsAuthenticator:
    """The accounts authenticator of ``settings`` (its user store opens lazily)."""
    return AccountsAuthenticator(
        server_secret(settings),
        UserStore(settings.database_url),
        session_ttl=settings.session_ttl_seconds,
        leeway=settings.jwt_leeway_seconds,
    )
