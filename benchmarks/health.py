"""GET /health: the baseline. No auth, no I/O: what the server costs with no work at all."""

from __future__ import annotations

from benchmarks import _calls
from benchmarks._calls import Call
from benchmarks._users import ClosedLoopUser, OpenModelUser


class HealthUser(ClosedLoopUser):
    gated = True

    def call(self) -> Call:
        return _calls.health()


class HealthOpenUser(OpenModelUser):
    gated = True

    def call(self) -> Call:
        return _calls.health()
