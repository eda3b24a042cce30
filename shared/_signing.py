"""Ed25519 keys and signatures over exact body bytes.

The gateway generates its key pair locally and keeps the private key in a file of mode 0600; only
the public key (32 raw bytes, base64) ever leaves it. Signatures are base64 (standard alphabet).
"""

from __future__ import annotations

import base64
import binascii
import os
import stat
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ._exceptions import KeyInvalid, SignatureInvalid

PUBLIC_KEY_TEXT_LENGTH = 44  # base64 of 32 bytes


def generate_private_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def public_key_text(key: Ed25519PrivateKey | Ed25519PublicKey) -> str:
    """The public half as base64 text, the form enrolled in the cloud."""
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode()


def load_public_key(text: str) -> Ed25519PublicKey:
    """Parse a public key from its base64 text; raise KeyInvalid saying what is wrong."""
    try:
        raw = base64.b64decode(text.encode(), validate=True)
    except (binascii.Error, ValueError, AttributeError) as exc:
        raise KeyInvalid("public key is not valid base64") from exc
    if len(raw) != 32:
        raise KeyInvalid(f"public key must be 32 bytes of Ed25519, got {len(raw)}")
    return Ed25519PublicKey.from_public_bytes(raw)


def sign_body(private_key: Ed25519PrivateKey, body: bytes) -> str:
    return base64.b64encode(private_key.sign(body)).decode()


def verify_body(public_key: Ed25519PublicKey, body: bytes, signature: str | None) -> None:
    """Verify `signature` over exactly `body`; raise SignatureInvalid if it does not hold."""
    if not signature:
        raise SignatureInvalid("signature header is missing")
    try:
        raw = base64.b64decode(signature.encode(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SignatureInvalid("signature is not valid base64") from exc
    if len(raw) != 64:
        raise SignatureInvalid(f"signature must be 64 bytes of Ed25519, got {len(raw)}")
    try:
        public_key.verify(raw, body)
    except InvalidSignature as exc:
        raise SignatureInvalid("signature does not match the body under the enrolled key") from exc


def write_private_key(path: Path, key: Ed25519PrivateKey) -> None:
    """Write the private key as PKCS#8 PEM: created with mode 0600, replaced atomically."""
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, pem)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def read_private_key(path: Path) -> Ed25519PrivateKey:
    """Load the private key; refuse a file that others can read (the key would be compromised)."""
    try:
        mode = path.stat().st_mode
        data = path.read_bytes()
    except OSError as exc:
        raise KeyInvalid(f"cannot read private key {path}: {exc.strerror}") from exc
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyInvalid(
            f"private key {path} is readable by others (mode {stat.S_IMODE(mode):o}); "
            f"run: chmod 600 {path}"
        )
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except ValueError as exc:
        raise KeyInvalid(f"private key {path} is not a PEM private key") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyInvalid(f"private key {path} is not an Ed25519 key")
    return key
