"""A DLMS meter's HLS-GMAC keys, from a key file on the gateway that only its owner may read.

    # keys/meter-07.toml   (chmod 600; owned by the user the daemon runs as)
    guek = "000102030405060708090A0B0C0D0E0F"   # global unicast encryption key (16 bytes, hex)
    gak = "D0D1D2D3D4D5D6D7D8D9DADBDCDDDEDF"    # global authentication key (16 bytes, hex)
    client_system_title = "4747570000000001"    # this gateway's system title (8 bytes, hex)
    meter_system_title = "4D4D4D0000BC614E"     # optional: the meter's; another is refused

The file is refused, with the command that fixes it, when group or others may read or write
it, or when someone else owns it. Its content never appears in an error, a log line or a repr:
errors name the file and the key, never a value.
"""

from __future__ import annotations

import os
import stat
import tomllib
from pathlib import Path

from protocols.dlms.security import KEY_BYTES, TITLE_BYTES, SecurityKeys
from shared import GridgateError

MAX_KEY_FILE_BYTES = 4096
FIELDS = {
    "guek": KEY_BYTES,
    "gak": KEY_BYTES,
    "client_system_title": TITLE_BYTES,
    "meter_system_title": TITLE_BYTES,
}
REQUIRED = ("guek", "gak", "client_system_title")


class KeyFileError(GridgateError):
    """A meter's key file cannot be used; the message names the file and the fix."""


def _read_private(path: Path) -> bytes:
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:
        raise KeyFileError(f"{path}: key file not found") from None
    except OSError as exc:
        raise KeyFileError(f"{path}: cannot open the key file: {exc.strerror}") from None
    try:
        info = os.fstat(fd)  # of the file opened, not of whatever the path names by now
        if not stat.S_ISREG(info.st_mode):
            raise KeyFileError(f"{path}: a key file must be a regular file")
        if info.st_mode & 0o077:
            raise KeyFileError(
                f"{path}: key file is readable or writable by group or others"
                f" (mode {stat.S_IMODE(info.st_mode):03o}); run: chmod 600 {path}"
            )
        if info.st_uid not in (os.geteuid(), 0):
            raise KeyFileError(
                f"{path}: key file belongs to uid {info.st_uid}, not to this daemon's user"
                f" (uid {os.geteuid()}); run: chown {os.geteuid()} {path}"
            )
        if info.st_size > MAX_KEY_FILE_BYTES:
            raise KeyFileError(f"{path}: key file is over {MAX_KEY_FILE_BYTES} bytes")
        return os.read(fd, MAX_KEY_FILE_BYTES + 1)
    finally:
        os.close(fd)


def load_key_file(path: Path) -> SecurityKeys:
    """The keys in `path`, or KeyFileError saying what to fix."""
    raw = _read_private(path)
    try:
        data = tomllib.loads(raw.decode())
    except (UnicodeDecodeError, tomllib.TOMLDecodeError):
        # the parser's message quotes the line, which may hold a key: say only where
        raise KeyFileError(f"{path}: not a TOML key file (see docs: guek, gak, ...)") from None
    unknown = sorted(set(data) - set(FIELDS))
    if unknown:
        raise KeyFileError(f"{path}: unknown entries {', '.join(unknown)}")
    missing = [name for name in REQUIRED if name not in data]
    if missing:
        raise KeyFileError(f"{path}: missing {', '.join(missing)}")
    values: dict[str, bytes] = {}
    for name, size in FIELDS.items():
        if name not in data:
            continue
        text = data[name]
        try:
            value = bytes.fromhex(text) if isinstance(text, str) else b""
        except ValueError:
            value = b""
        if len(value) != size:
            raise KeyFileError(f"{path}: {name} must be {size} bytes written as {2 * size} hex")
        values[name] = value
    if values["guek"] == values["gak"]:
        raise KeyFileError(f"{path}: guek and gak must be two different keys")
    return SecurityKeys(
        encryption_key=values["guek"],
        authentication_key=values["gak"],
        client_title=values["client_system_title"],
        meter_title=values.get("meter_system_title"),
    )


def write_key_file(path: Path, keys: SecurityKeys) -> None:
    """Write a key file owner-only from the start (for provisioning tools and tests)."""
    lines = [
        f'guek = "{keys.encryption_key.hex().upper()}"',
        f'gak = "{keys.authentication_key.hex().upper()}"',
        f'client_system_title = "{keys.client_title.hex().upper()}"',
    ]
    if keys.meter_title is not None:
        lines.append(f'meter_system_title = "{keys.meter_title.hex().upper()}"')
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write("\n".join(lines) + "\n")
    os.chmod(path, 0o600)
