"""Keys and signatures: text forms, key files and their permissions."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from shared import (
    KeyInvalid,
    SignatureInvalid,
    generate_private_key,
    load_public_key,
    public_key_text,
    read_private_key,
    sign_body,
    verify_body,
    write_private_key,
)


def test_public_key_text_round_trip_verifies() -> None:
    key = generate_private_key()
    text = public_key_text(key)
    assert len(text) == 44
    verify_body(load_public_key(text), b"body", sign_body(key, b"body"))


def test_signature_over_other_bytes_fails() -> None:
    key = generate_private_key()
    with pytest.raises(SignatureInvalid):
        verify_body(key.public_key(), b"body!", sign_body(key, b"body"))


@pytest.mark.parametrize("text", ["", "@@@", "AAAA", "A" * 100])
def test_malformed_public_key_text(text: str) -> None:
    with pytest.raises(KeyInvalid):
        load_public_key(text)


def test_private_key_file_is_created_0600_and_reads_back(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "gateway.pem"
    key = generate_private_key()
    write_private_key(path, key)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert public_key_text(read_private_key(path)) == public_key_text(key)


def test_private_key_readable_by_others_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "gateway.pem"
    write_private_key(path, generate_private_key())
    os.chmod(path, 0o644)
    with pytest.raises(KeyInvalid, match="chmod 600"):
        read_private_key(path)


def test_missing_or_garbage_key_file(tmp_path: Path) -> None:
    with pytest.raises(KeyInvalid, match="cannot read"):
        read_private_key(tmp_path / "absent.pem")
    garbage = tmp_path / "garbage.pem"
    garbage.write_bytes(b"hello")
    garbage.chmod(0o600)
    with pytest.raises(KeyInvalid, match="not a PEM"):
        read_private_key(garbage)
