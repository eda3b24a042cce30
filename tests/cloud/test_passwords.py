"""New passwords (NIST SP 800-63B: length, no composition rules, not common, not the account's
own e-mail or name) and hashing that leaves the service answering.

Regressions: `password12`, `1234567890` and the user's own e-mail were accepted; Argon2 ran on
the event loop, so /health took 260-500 ms during a dozen logins (bench/login_load.py measures).
"""

from __future__ import annotations

import asyncio

import pytest

from cloud.errors import InvalidInput
from cloud.services.passwords import (
    check_new_password,
    common_password_count,
    hash_password,
    verify_password,
)


def test_the_common_password_list_is_large() -> None:
    assert common_password_count() >= 10_000


@pytest.mark.parametrize(
    ("password", "reason"),
    [
        ("password12", "most common"),
        ("1234567890", "most common"),
        ("qwertyuiop", "most common"),
        ("Password123", "most common"),
        ("priya.sharma@example.in", "e-mail"),
        ("Priya Sharma", "name"),
        ("aaaaaaaaaaaa", "easy to guess"),
        ("short", "10 to 256"),
    ],
)
def test_guessable_passwords_are_refused(password: str, reason: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        check_new_password(password, email="priya.sharma@example.in", name="Priya Sharma")
    assert reason in str(refused.value)


@pytest.mark.parametrize(
    "password", ["correct horse battery", "monsoon kettle ledger", "Tr0ub4dor&3-lamp"]
)
def test_good_passwords_pass_without_composition_rules(password: str) -> None:
    check_new_password(password, email="priya.sharma@example.in", name="Priya Sharma")


async def test_hashing_leaves_the_event_loop_free() -> None:
    """While a password is hashed and verified, other work on the loop goes on: a ticker that
    only advances when the loop is free keeps ticking (it would stand still if Argon2 ran on
    the loop)."""
    stored = await hash_password("correct horse battery")
    ticks = 0
    done = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not done.is_set():
            ticks += 1
            await asyncio.sleep(0)

    running = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    before = ticks
    assert await verify_password(stored, "correct horse battery")
    assert not await verify_password(stored, "a wrong guess entirely")
    assert not await verify_password(None, "an account that does not exist")
    during = ticks - before
    done.set()
    await running
    assert during > 10
