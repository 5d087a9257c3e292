"""Aegis runtime: Matrix login, encryption, the sync loop, the outbox sender, and their wiring."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("aegis")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+source"
