"""Console passwords: argon2id hashes (memory-hard), verified off the event loop.

The parameters are argon2-cffi's defaults, which are RFC 9106's second recommended option
(argon2id, 64 MiB, 3 passes, 4 lanes): about half a second on one core of the machines we run
on, which is what makes a stolen ``users`` table expensive to guess through. Tests pass a cheap
:class:`argon2.PasswordHasher` instead; production never does.
"""

from __future__ import annotations

import asyncio

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

MIN_PASSWORD_CHARS = 12
"""Shortest password accepted when a user is added: with lock-out after a few failures an
online guess is hopeless, and 12 characters keep an offline guess against argon2id costly."""

MAX_PASSWORD_CHARS = 256
"""Longest password looked at: argon2 hashes any length, but a megabyte "password" posted to
the sign-in form would only be an attempt to burn CPU."""

MAX_CONCURRENT_HASHES = 4
"""Hashes computed at once. Each argon2id run holds 64 MiB; a burst of sign-in attempts must
queue, not exhaust the node's memory."""


def default_hasher() -> PasswordHasher:
    """The production hasher (RFC 9106 second recommendation, argon2-cffi's default)."""
    return PasswordHasher()


def hash_password(password: str, hasher: PasswordHasher | None = None) -> str:
    """The argon2id encoded hash of ``password`` (``$argon2id$v=19$…``)."""
    return (hasher or default_hasher()).hash(password)


def password_problem(password: str) -> str | None:
    """Why ``password`` may not be set (Russian, for the administrator), or None."""
    if len(password) < MIN_PASSWORD_CHARS:
        return f"пароль короче {MIN_PASSWORD_CHARS} символов"
    if len(password) > MAX_PASSWORD_CHARS:
        return f"пароль длиннее {MAX_PASSWORD_CHARS} символов"
    if password != password.strip():
        return "пароль начинается или заканчивается пробелом (так его легко ввести неверно)"
    return None


class PasswordChecker:
    """Verifies passwords in worker threads, a bounded number at a time.

    For a username that does not exist it still runs one verification against a hash of the
    same cost, so the answer's timing does not tell which usernames exist.
    """

    def __init__(self, hasher: PasswordHasher | None = None) -> None:
        self.hasher = hasher or default_hasher()
        self._slots = asyncio.Semaphore(MAX_CONCURRENT_HASHES)
        self._decoy: str | None = None

    async def check(self, password_hash: str | None, password: str) -> bool:
        """True when ``password`` matches ``password_hash``; None hash: a decoy check, False."""
        async with self._slots:
            if password_hash is None:
                if self._decoy is None:
                    self._decoy = await asyncio.to_thread(self.hasher.hash, "decoy password")
                await asyncio.to_thread(self._verify, self._decoy, password)
                return False
            return await asyncio.to_thread(self._verify, password_hash, password)

    def _verify(self, password_hash: str, password: str) -> bool:
        try:
            return self.hasher.verify(password_hash, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False
