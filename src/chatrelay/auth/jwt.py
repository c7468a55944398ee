"""``jwt`` mode: Bearer JWTs minted by the operator's own login (and accounts mode's cookie).

A token is accepted only when it is signed by the configured key with the
algorithm of that key's family (HS256 for a shared secret, RS256 or ES256
for a public key), never ``none`` and never HS256 checked against a public
key (algorithm confusion); ``exp`` is required, ``aud`` / ``iss`` are checked
when configured. The user is ``sub``; ``role: admin`` makes an administrator.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from starlette.requests import HTTPConnection

from chatrelay.auth.base import Principal
from chatrelay.exceptions import NotAuthenticated
from chatrelay.protocol.client_frames import valid_session_id

logger = logging.getLogger(__name__)

HMAC_ALGORITHMS = ("HS256",)
PUBLIC_KEY_ALGORITHMS = ("RS256", "ES256")
ADMIN_ROLE = "admin"
# A JWKS is fetched at most this often, however many unknown ``kid``s arrive:
# a stream of forged tokens must not turn into a stream of requests.
JWKS_MIN_REFRESH_SECONDS = 30.0
JWKS_FETCH_TIMEOUT_SECONDS = 5.0
BEARER = "bearer"

PublicKey = RSAPublicKey | EllipticCurvePublicKey
VerificationKey = str | PublicKey


def load_public_key(pem: str) -> tuple[PublicKey, str]:
    """A PEM public key and the one algorithm it verifies: RS256 for RSA, ES256 for EC."""
    key = load_pem_public_key(pem.encode())
    if isinstance(key, RSAPublicKey):
        return key, "RS256"
    if isinstance(key, EllipticCurvePublicKey):
        return key, "ES256"
    raise ValueError("CHATRELAY_JWT_PUBLIC_KEY must be an RSA or EC public key (PEM)")


class JwksKeys:
    """The keys of a JWKS URL by ``kid``: fetched once, refetched on an unknown ``kid``.

    Refetches are spaced by ``min_refresh`` seconds. ``authenticate`` is
    synchronous, so a fetch blocks its caller (bounded by the timeout and
    the spacing); the lock keeps concurrent callers from fetching twice.
    """

    def __init__(self, url: str, min_refresh: float = JWKS_MIN_REFRESH_SECONDS) -> None:
        self._url = url
        self._min_refresh = min_refresh
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at: float | None = None
        self._lock = threading.Lock()

    def key(self, kid: str) -> jwt.PyJWK:
        """The key named ``kid``; raises ``NotAuthenticated`` when the JWKS has none."""
        with self._lock:
            if kid not in self._keys and self._may_fetch():
                self._fetch()
            found = self._keys.get(kid)
        if found is None:
            raise NotAuthenticated("the token's signing key is unknown")
        return found

    def _may_fetch(self) -> bool:
        return self._fetched_at is None or (
            time.monotonic() - self._fetched_at >= self._min_refresh
        )

    def _fetch(self) -> None:
        self._fetched_at = time.monotonic()
        try:
            response = httpx.get(self._url, timeout=JWKS_FETCH_TIMEOUT_SECONDS)
            response.raise_for_status()
            key_set = jwt.PyJWKSet.from_dict(response.json())
        except (httpx.HTTPError, ValueError, jwt.PyJWKSetError) as exc:
            logger.warning("could not fetch the JWKS at %s: %s", self._url, exc)
            return  # keep the keys we had
        self._keys = {key.key_id: key for key in key_set.keys if key.key_id}
        logger.info("JWKS fetched from %s: %d keys", self._url, len(self._keys))


@dataclass(frozen=True)
class Claims:
    """What every token must satisfy besides its signature."""

    audience: str | None = None
    issuer: str | None = None
    leeway: float = 30.0


class JwtVerifier:
    """Checks a token's signature and claims and answers its :class:`Principal`.

    Give exactly one key source: ``secret`` (HS256), ``public_key`` (PEM,
    RS256 or ES256 by its type) or ``jwks`` (each key's own family).
    """

    def __init__(
        self,
        claims: Claims,
        *,
        secret: str | None = None,
        public_key: str | None = None,
        jwks: JwksKeys | None = None,
    ) -> None:
        if sum(source is not None for source in (secret, public_key, jwks)) != 1:
            raise ValueError(
                "jwt mode needs exactly one of CHATRELAY_JWT_SECRET, "
                "CHATRELAY_JWT_PUBLIC_KEY, CHATRELAY_JWT_JWKS_URL"
            )
        self._claims = claims
        self._jwks = jwks
        self._key: VerificationKey | None = None
        self._algorithms: list[str] = []
        if secret is not None:
            self._key, self._algorithms = secret, list(HMAC_ALGORITHMS)
        elif public_key is not None:
            self._key, algorithm = load_public_key(public_key)
            self._algorithms = [algorithm]

    def verify(self, token: str) -> Principal:
        """The principal of ``token``; raises ``NotAuthenticated`` with a short reason."""
        key, algorithms = self._key_for(token)
        try:
            payload = jwt.decode(
                token,
                key,
                algorithms=algorithms,
                audience=self._claims.audience,
                issuer=self._claims.issuer,
                leeway=self._claims.leeway,
                options={
                    "require": ["exp", "sub"],
                    # Without a configured audience a token's aud is not ours to judge.
                    "verify_aud": self._claims.audience is not None,
                },
            )
        except jwt.ExpiredSignatureError as exc:
            raise NotAuthenticated("the token has expired") from exc
        except jwt.InvalidTokenError as exc:
            raise NotAuthenticated(f"invalid token: {exc}") from exc
        return principal_from_claims(payload)

    def _key_for(self, token: str) -> tuple[VerificationKey | jwt.PyJWK, list[str]]:
        if self._jwks is None:
            assert self._key is not None
            return self._key, self._algorithms
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError as exc:
            raise NotAuthenticated(f"invalid token: {exc}") from exc
        kid = header.get("kid")
        if not isinstance(kid, str):
            raise NotAuthenticated("the token names no signing key (kid)")
        key = self._jwks.key(kid)
        algorithm = key.algorithm_name
        if algorithm not in PUBLIC_KEY_ALGORITHMS:
            raise NotAuthenticated(f"the signing key's algorithm {algorithm} is not accepted")
        return key, [algorithm]


def principal_from_claims(payload: Mapping[str, object]) -> Principal:
    """``sub`` (a valid user id), ``role`` and ``exp`` of a verified token."""
    subject = payload.get("sub")
    if not isinstance(subject, str) or not valid_session_id(subject):
        raise NotAuthenticated("the token's sub must be 1 to 128 characters of [A-Za-z0-9_.:-]")
    expires = payload.get("exp")
    return Principal(
        subject,
        admin=payload.get("role") == ADMIN_ROLE,
        expires_at=float(expires) if isinstance(expires, int | float) else None,
    )


def bearer_token(connection: HTTPConnection) -> str | None:
    """The token of an ``Authorization: Bearer`` header, if there is one."""
    scheme, _, token = connection.headers.get("authorization", "").partition(" ")
    if scheme.lower() != BEARER or not token.strip():
        return None
    return token.strip()


class JwtAuthenticator:
    """Authenticates by a Bearer JWT, or (accounts mode) by the session cookie holding one."""

    def __init__(self, verifier: JwtVerifier, cookie: str | None = None) -> None:
        self._verifier = verifier
        self._cookie = cookie

    def authenticate(self, connection: HTTPConnection) -> Principal:
        token = bearer_token(connection)
        if token is None and self._cookie is not None:
            token = connection.cookies.get(self._cookie)
        if not token:
            raise NotAuthenticated("a Bearer token is required")
        return self._verifier.verify(token)
