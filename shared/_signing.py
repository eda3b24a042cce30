"""Ed25519 keys and signatures over exact body bytes.

The gateway generates its key pair locally and keeps the private key in a file of mode 0600; only
the public key (32 raw bytes, base64) ever leaves it. Signatures are base64 (standard alphabet).
The arithmetic is libsodium's (PyNaCl); the key file is standard PKCS#8 PEM, so a key OpenSSL or
pyca/cryptography wrote reads here and the other way round.
"""

from __future__ import annotations

import base64
import binascii
import os
import stat
from pathlib import Path

from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey

from ._exceptions import KeyInvalid, SignatureInvalid

PUBLIC_KEY_TEXT_LENGTH = 44  # base64 of 32 bytes
# RFC 8410: an Ed25519 private key in PKCS#8 is this DER prefix and the key's 32-byte seed
# (what `openssl genpkey -algorithm ed25519` and pyca/cryptography write)
_PKCS8_ED25519_PREFIX = bytes.fromhex("302e020100300506032b657004220420")
_PEM_BEGIN, _PEM_END = b"-----BEGIN PRIVATE KEY-----", b"-----END PRIVATE KEY-----"


class PublicKey:
    """An Ed25519 public key (PyNaCl, libsodium: about a seventh of the memory of loading
    pyca/cryptography, which the gateway would need for nothing else)."""

    __slots__ = ("_key",)

    def __init__(self, raw: bytes) -> None:
        self._key = VerifyKey(raw)

    def raw(self) -> bytes:
        return bytes(self._key)

    def verify(self, signature: bytes, data: bytes) -> None:
        """Raise SignatureInvalid unless `signature` is this key's over exactly `data`."""
        try:
            self._key.verify(data, signature)
        except BadSignatureError as exc:
            raise SignatureInvalid(
                "signature does not match the body under the enrolled key"
            ) from exc


class PrivateKey:
    """An Ed25519 private key: signs, and gives its public half."""

    __slots__ = ("_key",)

    def __init__(self, seed: bytes) -> None:
        self._key = SigningKey(seed)

    @classmethod
    def generate(cls) -> PrivateKey:
        return cls(bytes(SigningKey.generate()))

    def seed(self) -> bytes:
        return bytes(self._key)

    def public_key(self) -> PublicKey:
        return PublicKey(bytes(self._key.verify_key))

    def sign(self, data: bytes) -> bytes:
        return self._key.sign(data).signature


def generate_private_key() -> PrivateKey:
    return PrivateKey.generate()


def public_key_text(key: PrivateKey | PublicKey) -> str:
    """The public half as base64 text, the form enrolled in the cloud."""
    public = key.public_key() if isinstance(key, PrivateKey) else key
    return base64.b64encode(public.raw()).decode()


def load_public_key(text: str) -> PublicKey:
    """Parse a public key from its base64 text; raise KeyInvalid saying what is wrong."""
    try:
        raw = base64.b64decode(text.encode(), validate=True)
    except (binascii.Error, ValueError, AttributeError) as exc:
        raise KeyInvalid("public key is not valid base64") from exc
    if len(raw) != 32:
        raise KeyInvalid(f"public key must be 32 bytes of Ed25519, got {len(raw)}")
    return PublicKey(raw)


def sign_body(private_key: PrivateKey, body: bytes) -> str:
    return base64.b64encode(private_key.sign(body)).decode()


def verify_body(public_key: PublicKey, body: bytes, signature: str | None) -> None:
    """Verify `signature` over exactly `body`; raise SignatureInvalid if it does not hold."""
    if not signature:
        raise SignatureInvalid("signature header is missing")
    try:
        raw = base64.b64decode(signature.encode(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SignatureInvalid("signature is not valid base64") from exc
    if len(raw) != 64:
        raise SignatureInvalid(f"signature must be 64 bytes of Ed25519, got {len(raw)}")
    public_key.verify(raw, body)


def private_key_pem(key: PrivateKey) -> bytes:
    """The key as unencrypted PKCS#8 PEM (RFC 8410), as OpenSSL writes an Ed25519 key."""
    der = base64.b64encode(_PKCS8_ED25519_PREFIX + key.seed())
    return _PEM_BEGIN + b"\n" + der + b"\n" + _PEM_END + b"\n"


def private_key_from_pem(data: bytes) -> PrivateKey:
    """The key of an unencrypted Ed25519 PKCS#8 PEM; KeyInvalid saying what else it is."""
    lines = data.strip().splitlines()
    if len(lines) < 3 or lines[0].strip() != _PEM_BEGIN or lines[-1].strip() != _PEM_END:
        raise KeyInvalid("not a PEM private key (-----BEGIN PRIVATE KEY-----)")
    try:
        der = base64.b64decode(b"".join(line.strip() for line in lines[1:-1]), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise KeyInvalid("not a PEM private key: its body is not base64") from exc
    if len(der) != len(_PKCS8_ED25519_PREFIX) + 32 or not der.startswith(_PKCS8_ED25519_PREFIX):
        raise KeyInvalid("not an Ed25519 key (PKCS#8, RFC 8410)")
    return PrivateKey(der[len(_PKCS8_ED25519_PREFIX) :])


def write_private_key(path: Path, key: PrivateKey) -> None:
    """Write the private key as PKCS#8 PEM: created with mode 0600, replaced atomically."""
    pem = private_key_pem(key)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, pem)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def read_private_key(path: Path) -> PrivateKey:
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
        return private_key_from_pem(data)
    except KeyInvalid as exc:
        raise KeyInvalid(f"private key {path} is {exc}") from None
