"""Keys and signatures: text forms, key files and their permissions."""

from __future__ import annotations

import base64
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


def test_key_files_and_signatures_agree_with_openssl(tmp_path: Path) -> None:
    """The key file is standard PKCS#8 PEM (RFC 8410): one written by pyca/cryptography
    (OpenSSL) reads here with the same public half, one written here reads there, and either
    library verifies the other's signatures."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    theirs = Ed25519PrivateKey.generate()
    path = tmp_path / "theirs.pem"
    path.write_bytes(
        theirs.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)
    ours = read_private_key(path)
    raw = theirs.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    assert ours.public_key().raw() == raw
    verify_body(load_public_key(public_key_text(ours)), b"body", sign_body(ours, b"body"))
    theirs.public_key().verify(ours.sign(b"body"), b"body")  # raises if it does not hold
    verify_body(ours.public_key(), b"body", base64.b64encode(theirs.sign(b"body")).decode())

    mine = generate_private_key()
    write_private_key(tmp_path / "mine.pem", mine)
    loaded = serialization.load_pem_private_key((tmp_path / "mine.pem").read_bytes(), password=None)
    assert isinstance(loaded, Ed25519PrivateKey)
    assert (
        loaded.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        == mine.public_key().raw()
    )


def test_a_pem_key_of_another_kind_is_named(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    path = tmp_path / "ec.pem"
    path.write_bytes(
        ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)
    with pytest.raises(KeyInvalid, match="not an Ed25519 key"):
        read_private_key(path)
