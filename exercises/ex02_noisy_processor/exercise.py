"""Exercise 02: a structlog processor that quiets one noisy logger.

A third-party library logs every retry at ``info`` under the logger name ``noisy`` (and its
children, ``noisy.pool`` ...). Keep its warnings and errors, drop the rest, and leave every other
logger alone. A processor is a small callable ``(logger, method_name, event_dict) -> event_dict``;
raising ``structlog.DropEvent`` drops the event (lesson 02, step 1 shows the chain).

Check it: make check EX=02
"""

from __future__ import annotations

from structlog.typing import EventDict, WrappedLogger

NOISY_LOGGER = "noisy"
MIN_LEVEL = "warning"


def drop_noisy_below_warning(
    logger: WrappedLogger, method_name: str, event_dict: EventDict
) -> EventDict:
    """Drop events of the ``noisy`` logger (and its children) below ``warning``; keep the rest."""
    # TODO: read the logger's name from event_dict["logger"] and the level from method_name,
    #       and raise structlog.DropEvent for noisy events below MIN_LEVEL.
    return event_dict
