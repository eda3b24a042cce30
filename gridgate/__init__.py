"""The `gridgate` command: mounts each package's own CLI, and `demo`. Nothing imports this."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("gridgate")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"
