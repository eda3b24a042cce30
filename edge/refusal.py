"""The one exception a command of the cloud's ends with when the gateway cannot do it: apart
from the command machinery (edge/control.py) so that the parts that refuse need not load it."""

from __future__ import annotations


class CommandRefused(Exception):
    """The gateway cannot do this command (the message says why); not an error of the run."""
