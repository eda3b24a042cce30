"""A serial line on a pseudo-terminal, for simulated devices.

The gateway opens the pty's slave end (`link` is a symlink to it); the simulator holds the master
end and keeps the slave open too, so a gateway that closes and reopens the port finds the line
still there. The line is raw: no echo, no line editing, bytes as sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import termios
import tty
from collections.abc import Callable
from pathlib import Path

_BAUDS = {
    getattr(termios, f"B{rate}"): rate
    for rate in (1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200)
}


class LinkPathError(ValueError):
    """The --link path cannot be used (exists and is not ours, or its folder is missing)."""


def check_link_path(link: Path) -> None:
    if not link.parent.is_dir():
        raise LinkPathError(f"--link {link}: folder {link.parent} does not exist")
    if link.exists() and not link.is_symlink():
        raise LinkPathError(f"--link {link}: a file that is not a symlink is already there")
    if not os.access(link.parent, os.W_OK):
        raise LinkPathError(f"--link {link}: folder {link.parent} is not writable")


class PtyLine:
    def __init__(self, link: Path | None, on_bytes: Callable[[bytes, float], None]) -> None:
        self.link = link
        self._on_bytes = on_bytes
        self._master = -1
        self._slave = -1

    @property
    def device_path(self) -> str:
        return os.ttyname(self._slave)

    def open(self) -> None:
        if self.link is not None:
            check_link_path(self.link)
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave, termios.TCSANOW)
        os.set_blocking(self._master, False)
        if self.link is not None:
            with contextlib.suppress(FileNotFoundError):
                self.link.unlink()
            self.link.symlink_to(self.device_path)
        asyncio.get_running_loop().add_reader(self._master, self._readable)

    def close(self) -> None:
        if self._master >= 0:
            asyncio.get_running_loop().remove_reader(self._master)
        if self.link is not None and self.link.is_symlink():
            self.link.unlink()
        for fd in (self._master, self._slave):
            if fd >= 0:
                os.close(fd)
        self._master = self._slave = -1

    def _readable(self) -> None:
        try:
            data = os.read(self._master, 4096)
        except OSError:  # EAGAIN, or no process holds the slave open right now
            return
        if data:
            self._on_bytes(data, asyncio.get_running_loop().time())

    def settings(self) -> tuple[int | None, str, int]:
        """(baud, parity N/E/O, stop bits) as the gateway set its end of the line."""
        _, _, cflag, _, _, ospeed, _ = termios.tcgetattr(self._slave)
        parity = "N" if not cflag & termios.PARENB else ("O" if cflag & termios.PARODD else "E")
        return _BAUDS.get(ospeed), parity, 2 if cflag & termios.CSTOPB else 1

    def write(self, data: bytes) -> None:
        """Put bytes on the line now (the caller has already waited for wire time)."""
        with contextlib.suppress(BlockingIOError):
            os.write(self._master, data)
