"""Structured logging set up once per process (structlog; text, logfmt or JSON to stderr)."""

from __future__ import annotations

import logging
import sys
from typing import Any, TextIO, cast

import structlog

LOG_FORMATS = ("text", "terminal", "logfmt", "json")
LOG_LEVELS = ("trace", "debug", "info", "warn", "warning", "error", "crit")

_LEVELS = {
    "trace": logging.DEBUG,
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "crit": logging.CRITICAL,
}


class _CurrentStderr:
    """A file-like object that always writes to the *current* `sys.stderr`.

    Binding the stream once at configuration time breaks when something (pytest's capture, a
    daemoniser) later swaps and closes `sys.stderr`; looking it up per write avoids writing to a
    closed file.
    """

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def _op_keys(_logger: Any, _name: str, event: dict[str, Any]) -> dict[str, Any]:
    """Rename structlog's keys to the ones OP services emit (`t`, `lvl`, `msg`), for log pipelines."""
    out: dict[str, Any] = {
        "t": event.pop("timestamp", None),
        "lvl": event.pop("level", None),
        "msg": event.pop("event", None),
    }
    out.update(event)
    return out


def setup_logging(fmt: str = "text", level: str = "info") -> None:
    """Configure structlog (and stdlib logging, for libraries) to write one line per event to stderr."""
    if fmt not in LOG_FORMATS:
        raise ValueError(f"unknown log format {fmt!r} (expected one of {', '.join(LOG_FORMATS)})")
    if level.lower() not in _LEVELS:
        raise ValueError(f"unknown log level {level!r} (expected one of {', '.join(LOG_LEVELS)})")
    lvl = _LEVELS[level.lower()]
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
        structlog.processors.format_exc_info,
    ]
    if fmt == "json":
        processors += [_op_keys, structlog.processors.JSONRenderer()]
    elif fmt == "logfmt":
        processors += [_op_keys, structlog.processors.LogfmtRenderer(key_order=["t", "lvl", "msg"])]
    else:
        processors.append(structlog.dev.ConsoleRenderer(colors=False))
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(lvl),
        logger_factory=structlog.PrintLoggerFactory(file=cast(TextIO, _CurrentStderr())),
        cache_logger_on_first_use=False,
    )
    # Libraries (py-libp2p, httpx) log through stdlib logging; keep them quiet unless debugging.
    logging.basicConfig(stream=sys.stderr, level=max(lvl, logging.WARNING))


def get_logger(name: str) -> Any:
    """Return a structlog logger bound with the component name."""
    return structlog.get_logger(component=name)
