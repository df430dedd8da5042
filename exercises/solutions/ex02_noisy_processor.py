"""Exercise 02, a reference solution: drop the ``noisy`` logger's events below ``warning``."""

from __future__ import annotations

import structlog
from structlog.typing import EventDict, WrappedLogger

NOISY_LOGGER = "noisy"
MIN_LEVEL = "warning"

# structlog's method names, in stdlib order ("warn", "exception" and "fatal" are aliases).
_LEVELS = {
    "debug": 10,
    "info": 20,
    "warn": 30,
    "warning": 30,
    "error": 40,
    "exception": 40,
    "critical": 50,
    "fatal": 50,
}


def _is_noisy(name: object) -> bool:
    return isinstance(name, str) and (name == NOISY_LOGGER or name.startswith(NOISY_LOGGER + "."))


def drop_noisy_below_warning(
    logger: WrappedLogger, method_name: str, event_dict: EventDict
) -> EventDict:
    """Drop events of the ``noisy`` logger (and its children) below ``warning``; keep the rest."""
    level = _LEVELS.get(method_name, _LEVELS[MIN_LEVEL])  # an unknown method is kept
    if _is_noisy(event_dict.get("logger")) and level < _LEVELS[MIN_LEVEL]:
        raise structlog.DropEvent
    return event_dict
