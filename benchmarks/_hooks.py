"""Typed access to Locust's event hooks, whose ``add_listener`` is not annotated."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["listen"]


def listen(hook: Any, handler: Callable[..., None]) -> None:
    """``hook.add_listener(handler)``, for example ``listen(events.quitting, on_quitting)``."""
    hook.add_listener(handler)
