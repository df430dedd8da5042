"""The two lengths of a fault scenario: bounded in `make test`, long in `make reliability`."""

from __future__ import annotations

import pytest

__all__ = ["LENGTHS"]

LENGTHS = [
    pytest.param(False, id="bounded"),
    pytest.param(True, id="long", marks=[pytest.mark.reliability_long, pytest.mark.timeout(900)]),
]
