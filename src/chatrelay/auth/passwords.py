"""Password hashing for ``accounts`` mode: argon2id with argon2-cffi's defaults (RFC 9106)."""

from __future__ import annotations

from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

MIN_PASSWORD_CHARS = 8
# Bounds the work one login costs; argon2 itself would take any length.
MAX_PASSWORD_CHARS = 1024

_hasher = PasswordHasher()


def check_new_password(password: str) -> None:
    """Raise ``ValueError`` saying why ``password`` may not be set."""
    if len(password) < MIN_PASSWORD_CHARS:
        raise ValueError(f"a password needs at least {MIN_PASSWORD_CHARS} characters")
    if len(password) > MAX_PASSWORD_CHARS:
        raise ValueError(f"a password has at most {MAX_PASSWORD_CHARS} characters")


def hash_password(password: str) -> str:
    """The argon2id hash to store for ``password``."""
    return _hasher.hash(password)


@cache
def _dummy_hash() -> str:
    return _hasher.hash("no account has this password")


def verify_password(stored_hash: str | None, password: str) -> bool:
    """Whether ``password`` matches ``stored_hash``.

    With no hash (an unknown user) it still runs one full verification, of
    a dummy hash, so the answer takes as long as for a wrong password.
    """
    try:
        return _hasher.verify(stored_hash or _dummy_hash(), password) and stored_hash is not None
    except (VerificationError, InvalidHashError):
        return False
