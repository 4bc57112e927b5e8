"""structlog, configured once: JSON for machines, console for people.

The standard library's logging (aiohttp, asyncio, kubernetes_asyncio, warnings) goes through
the same processors and renderer, so every line has one format, secrets redacted and long
values cut.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any

import structlog

_SECRET_KEYS = ("token", "password", "secret", "authorization", "webhook_url")
MAX_VALUE_CHARS = 1024
# A traceback keeps its end (the exception and where it was raised) up to this size.
MAX_TRACEBACK_CHARS = 8192
_HANDLER_NAME = "remediator"
# Libraries that log what their caller reports itself: kubernetes_asyncio warns "Config not
# found" and then raises "Invalid kube-config file", which the Kubernetes handlers turn into
# one error that says what is missing (handlers/kube.py).
QUIETED = {"kubernetes_asyncio.config.kube_config": logging.ERROR}


def _redact(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key in list(event):
        if any(word in key.lower() for word in _SECRET_KEYS):
            event[key] = "[redacted]"
    return event


def cut(text: str, limit: int = MAX_VALUE_CHARS) -> str:
    """``text``, or its first ``limit`` characters and its length."""
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} chars)"


def _shorten(value: Any) -> Any:
    if isinstance(value, str):
        return cut(value)
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, Mapping):
        return {_shorten(str(k)): _shorten(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_shorten(v) for v in value]
    return cut(repr(value))  # what the renderers would print, cut before it is printed


def _shorten_values(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Cut every long string (also inside dicts and lists): a 900 KB label stays one short line."""
    for key, value in event.items():
        if key.startswith("_"):  # structlog's own (ProcessorFormatter's _record)
            continue
        if key == "exception" and isinstance(value, str) and len(value) > MAX_TRACEBACK_CHARS:
            event[key] = (
                f"({len(value)} chars, the last {MAX_TRACEBACK_CHARS}) ..." + value[-MAX_TRACEBACK_CHARS:]
            )
        elif key != "exception":
            event[key] = _shorten(value)
    return event


def configure(fmt: str = "json", level: str = "INFO") -> None:
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        numeric = logging.INFO
    renderer: Any = (
        structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
        if fmt == "console"
        else structlog.processors.JSONRenderer()
    )
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _redact,
        structlog.processors.StackInfoRenderer(),
        structlog.processors.format_exc_info,
        _shorten_values,
    ]
    structlog.configure(
        processors=[*shared, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
    _route_stdlib(shared, renderer, max(numeric, logging.WARNING))


def _route_stdlib(shared: list[Any], renderer: Any, level: int) -> None:
    """The root logger's one handler of ours renders records as structlog events."""
    handler = logging.StreamHandler(sys.stderr)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[structlog.stdlib.add_logger_name, *shared],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for name, quiet in QUIETED.items():
        logging.getLogger(name).setLevel(quiet)
    logging.captureWarnings(True)
