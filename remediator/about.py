"""Who we are: the installed package's version (``remediator --version``, ``remediator_build_info``)."""

from __future__ import annotations

import functools
import platform
from importlib import metadata


@functools.cache
def version() -> str:
    """The version of the installed distribution (pyproject.toml's), or ``0+unknown``
    when run from a checkout that was never installed."""
    try:
        return metadata.version("remediator")
    except metadata.PackageNotFoundError:
        return "0+unknown"


def describe() -> str:
    """``remediator 0.1.0 (Python 3.11.2)``."""
    return f"remediator {version()} (Python {platform.python_version()})"
