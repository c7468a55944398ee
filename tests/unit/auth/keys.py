"""Keys and tokens for the auth tests: made per test run, never stored."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

HOUR = 3600


def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def public_pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> str:
    return key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode()


def claims(sub: str = "alice", lifetime: float = HOUR, **extra: Any) -> dict[str, Any]:
    """A token's claims: ``sub``, ``exp`` ``lifetime`` seconds from now, and ``extra``."""
    return {"sub": sub, "exp": int(time.time() + lifetime), **extra}


def unsigned(payload: dict[str, Any]) -> str:
    """An ``alg: none`` token (no signature)."""
    return jwt.encode(payload, None, algorithm="none")


@dataclass
class JwksServer:
    """A JWKS served over real HTTP from a thread; ``fetches`` counts its GETs."""

    keys: list[dict[str, Any]] = field(default_factory=list)
    fetches: int = 0
    url: str = ""

    def publish(self, key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey, kid: str) -> None:
        """Add ``key``'s public half under ``kid``."""
        name = "RS256" if isinstance(key, rsa.RSAPrivateKey) else "ES256"
        jwk = json.loads(jwt.get_algorithm_by_name(name).to_jwk(key.public_key()))
        self.keys.append({**jwk, "kid": kid})


@contextmanager
def jwks_server() -> Iterator[JwksServer]:
    """A running :class:`JwksServer` on a free loopback port."""
    state = JwksServer()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state.fetches += 1
            body = json.dumps({"keys": state.keys}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/.well-known/jwks.json"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
