"""Passwords: which new ones are accepted, and Argon2 hashing off the event loop.

The policy follows NIST SP 800-63B (section 5.1.1.2): a minimum length and no composition rules;
a new password is refused when it is one of the most common (zxcvbn's list of 30,000 from
leaked-password corpora), when it is the account's own e-mail, its local part or the user's
name, or when zxcvbn estimates it can be guessed in under a million tries (repeats, sequences,
keyboard walks, a dictionary word with a digit). Each refusal says why.

Argon2id (RFC 9106 defaults: 64 MiB, 3 passes) takes tens of milliseconds of CPU and that much
memory per call, so hashing runs in worker threads (argon2-cffi releases the GIL), at most one
per core at a time: the API keeps answering while people log in.
"""

from __future__ import annotations

import asyncio
import functools
import os
import re
from concurrent.futures import ThreadPoolExecutor

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from ..errors import InvalidInput

MIN_LENGTH, MAX_LENGTH = 10, 256
_ZXCVBN_PREFIX = 72  # zxcvbn refuses longer input (its matching grows faster than linearly)
_MIN_SCORE = 2  # zxcvbn: 2 = "somewhat guessable", over 10^6 guesses
_HASHER = PasswordHasher()  # immutable parameters, safe to share between threads
# one hash per core at a time, whichever event loop asks (threads start on first use)
_WORKERS = ThreadPoolExecutor(max_workers=os.cpu_count() or 1, thread_name_prefix="argon2")


@functools.cache
def _common_passwords() -> frozenset[str]:
    from zxcvbn.frequency_lists import FREQUENCY_LISTS  # 30,000 entries, loaded on first use

    return frozenset(FREQUENCY_LISTS["passwords"])


def common_password_count() -> int:
    """How many common passwords the policy refuses outright."""
    return len(_common_passwords())


def _letters(text: str) -> str:
    return re.sub(r"[^0-9a-z]", "", text.casefold())


def check_new_password(password: str, *, email: str | None = None, name: str | None = None) -> None:
    """Refuse a password no one should choose (InvalidInput naming the reason); see the module
    doc for the rules."""

    def refuse(reason: str) -> None:
        raise InvalidInput(f"password {reason}", errors=[("password", reason)])

    if not MIN_LENGTH <= len(password) <= MAX_LENGTH:
        refuse(f"must be {MIN_LENGTH} to {MAX_LENGTH} characters")
    folded = password.casefold()
    if folded in _common_passwords() or _letters(password) in _common_passwords():
        refuse("is one of the most common passwords; choose another")
    personal = [value for value in (email, name) if value]
    if email:
        personal.append(email.split("@", 1)[0])
    for value in personal:
        if _letters(value) and _letters(password) == _letters(value):
            refuse("must not be your e-mail address or your name")
    from zxcvbn import zxcvbn

    verdict = zxcvbn(password[:_ZXCVBN_PREFIX], user_inputs=[*personal, "gridgate"])
    if verdict["score"] < _MIN_SCORE:
        hint = verdict["feedback"].get("warning") or "it is easy to guess"
        refuse(f"is too easy to guess ({hint.rstrip('.')}); a few unrelated words work well")


async def _in_worker(work, *args):
    return await asyncio.get_running_loop().run_in_executor(_WORKERS, work, *args)


async def hash_password(password: str) -> str:
    return await _in_worker(_HASHER.hash, password)


def _verify(password_hash: str | None, password: str) -> bool:
    if password_hash is None:
        _HASHER.hash(password)  # the same work either way
        return False
    try:
        return _HASHER.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


async def verify_password(password_hash: str | None, password: str) -> bool:
    """Whether `password` matches; without a hash the same work is done (timing reveals
    nothing about whether the account exists) and the answer is no."""
    return await _in_worker(_verify, password_hash, password)


def hash_password_blocking(password: str) -> str:
    """For the command line and seeding, where no event loop is serving requests."""
    return _HASHER.hash(password)
