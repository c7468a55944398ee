"""jwt mode: what a token must be to be accepted, and each way it is refused."""

from __future__ import annotations

import hashlib
import hmac
import json
import time

import jwt
import pytest
from jwt.utils import base64url_encode
from starlette.requests import Request

from chatrelay.auth.jwt import Claims, JwksKeys, JwtAuthenticator, JwtVerifier
from chatrelay.exceptions import NotAuthenticated
from tests.unit.auth.keys import claims, ec_key, jwks_server, public_pem, rsa_key, unsigned

SECRET = "a-shared-secret-of-at-least-32-characters"


def hs256_verifier(**claim_rules: str) -> JwtVerifier:
    return JwtVerifier(Claims(**claim_rules), secret=SECRET)  # type: ignore[arg-type]


def refused(verifier: JwtVerifier, token: str) -> str:
    with pytest.raises(NotAuthenticated) as caught:
        verifier.verify(token)
    return caught.value.detail


def test_a_valid_hs256_token_names_its_user_role_and_expiry() -> None:
    payload = claims("alice", role="admin")
    principal = hs256_verifier().verify(jwt.encode(payload, SECRET, algorithm="HS256"))
    assert principal.user_id == "alice"
    assert principal.admin is True
    assert principal.expires_at == payload["exp"]


def test_a_token_without_the_admin_role_is_no_administrator() -> None:
    token = jwt.encode(claims("bob", role="editor"), SECRET, algorithm="HS256")
    assert hs256_verifier().verify(token).admin is False


def test_an_expired_token_is_refused() -> None:
    token = jwt.encode(claims(lifetime=-3600), SECRET, algorithm="HS256")
    assert "expired" in refused(hs256_verifier(), token)


def test_expiry_within_the_leeway_is_tolerated() -> None:
    token = jwt.encode(claims(lifetime=-5), SECRET, algorithm="HS256")
    assert JwtVerifier(Claims(leeway=30), secret=SECRET).verify(token).user_id == "alice"
    refused(JwtVerifier(Claims(leeway=0), secret=SECRET), token)


def test_a_token_signed_with_another_secret_is_refused() -> None:
    token = jwt.encode(claims(), "another-secret-of-at-least-32-characters!", algorithm="HS256")
    assert "signature" in refused(hs256_verifier(), token).lower()


def test_alg_none_is_refused() -> None:
    refused(hs256_verifier(), unsigned(claims()))


def test_a_token_without_exp_is_refused() -> None:
    token = jwt.encode({"sub": "alice"}, SECRET, algorithm="HS256")
    assert "exp" in refused(hs256_verifier(), token)


@pytest.mark.parametrize("sub", ["", "a b", "x" * 129, "ä", None, 42])
def test_a_sub_that_is_no_valid_user_id_is_refused(sub: object) -> None:
    payload = {"exp": int(time.time()) + 60} | ({} if sub is None else {"sub": sub})
    refused(hs256_verifier(), jwt.encode(payload, SECRET, algorithm="HS256"))


def test_audience_and_issuer_are_checked_when_set() -> None:
    verifier = hs256_verifier(audience="chat", issuer="https://login.example")
    good = claims(aud="chat", iss="https://login.example")
    assert verifier.verify(jwt.encode(good, SECRET, algorithm="HS256")).user_id == "alice"
    wrong_aud = jwt.encode(good | {"aud": "billing"}, SECRET, algorithm="HS256")
    assert "audience" in refused(verifier, wrong_aud).lower()
    wrong_iss = jwt.encode(good | {"iss": "https://evil.example"}, SECRET, algorithm="HS256")
    assert "issuer" in refused(verifier, wrong_iss).lower()
    missing_aud = jwt.encode(claims(iss="https://login.example"), SECRET, algorithm="HS256")
    refused(verifier, missing_aud)


@pytest.mark.parametrize("make_key", [rsa_key, ec_key], ids=["RS256", "ES256"])
def test_a_public_key_verifies_its_own_family_only(make_key: object) -> None:
    key = make_key()  # type: ignore[operator]
    algorithm = "RS256" if make_key is rsa_key else "ES256"
    verifier = JwtVerifier(Claims(), public_key=public_pem(key))
    assert verifier.verify(jwt.encode(claims(), key, algorithm=algorithm)).user_id == "alice"
    other = make_key()  # type: ignore[operator]
    refused(verifier, jwt.encode(claims(), other, algorithm=algorithm))
    refused(verifier, unsigned(claims()))


def test_hs256_signed_with_the_public_key_as_secret_is_refused() -> None:
    """Algorithm confusion: the public key is public, so an HMAC made with it proves nothing."""
    key = rsa_key()
    pem = public_pem(key)
    # PyJWT refuses to sign HMAC with a PEM; an attacker forges the token by hand.
    header = base64url_encode(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = base64url_encode(json.dumps(claims()).encode())
    signing_input = header + b"." + body
    mac = hmac.new(pem.encode(), signing_input, hashlib.sha256).digest()
    forged = (signing_input + b"." + base64url_encode(mac)).decode()
    assert "alg value is not allowed" in refused(JwtVerifier(Claims(), public_key=pem), forged)


def test_exactly_one_key_source_is_required() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        JwtVerifier(Claims())
    with pytest.raises(ValueError, match="exactly one"):
        JwtVerifier(Claims(), secret=SECRET, public_key=public_pem(rsa_key()))


def test_jwks_keys_are_fetched_once_and_refetched_for_an_unknown_kid() -> None:
    first, second = rsa_key(), ec_key()
    with jwks_server() as server:
        server.publish(first, "k1")
        verifier = JwtVerifier(Claims(), jwks=JwksKeys(server.url, min_refresh=0))
        token = jwt.encode(claims("alice"), first, algorithm="RS256", headers={"kid": "k1"})
        assert verifier.verify(token).user_id == "alice"
        assert verifier.verify(token).user_id == "alice"
        assert server.fetches == 1  # cached

        server.publish(second, "k2")  # the issuer rotates in a new key
        rotated = jwt.encode(claims("bob"), second, algorithm="ES256", headers={"kid": "k2"})
        assert verifier.verify(rotated).user_id == "bob"
        assert server.fetches == 2


def test_jwks_refetches_are_rate_limited() -> None:
    key = rsa_key()
    with jwks_server() as server:
        server.publish(key, "k1")
        verifier = JwtVerifier(Claims(), jwks=JwksKeys(server.url, min_refresh=3600))
        verifier.verify(jwt.encode(claims(), key, algorithm="RS256", headers={"kid": "k1"}))
        for attempt in range(5):
            forged = jwt.encode(
                claims(), rsa_key(), algorithm="RS256", headers={"kid": f"x{attempt}"}
            )
            assert "unknown" in refused(verifier, forged)
        assert server.fetches == 1


def test_jwks_refuses_hs256_and_tokens_without_kid() -> None:
    key = rsa_key()
    with jwks_server() as server:
        server.publish(key, "k1")
        verifier = JwtVerifier(Claims(), jwks=JwksKeys(server.url))
        refused(verifier, jwt.encode(claims(), key, algorithm="RS256"))  # no kid
        hs = jwt.encode(claims(), SECRET, algorithm="HS256", headers={"kid": "k1"})
        refused(verifier, hs)
        refused(verifier, unsigned(claims()))


def _request(headers: dict[str, str]) -> Request:
    raw = [(name.lower().encode(), value.encode()) for name, value in headers.items()]
    return Request(
        {"type": "http", "method": "GET", "path": "/", "headers": raw, "query_string": b""}
    )


def test_the_authenticator_reads_a_bearer_header_and_the_cookie_only_when_told() -> None:
    token = jwt.encode(claims("carol"), SECRET, algorithm="HS256")
    bearer_only = JwtAuthenticator(hs256_verifier())
    assert (
        bearer_only.authenticate(_request({"Authorization": f"Bearer {token}"})).user_id == "carol"
    )
    with pytest.raises(NotAuthenticated):
        bearer_only.authenticate(_request({"Cookie": f"session={token}"}))
    with pytest.raises(NotAuthenticated):
        bearer_only.authenticate(_request({}))
    with_cookie = JwtAuthenticator(hs256_verifier(), cookie="session")
    assert with_cookie.authenticate(_request({"Cookie": f"session={token}"})).user_id == "carol"
