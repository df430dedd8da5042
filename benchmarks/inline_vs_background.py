"""POST /process-data: the same work (``--io-ms``, ``--cpu-ms``) after the response or before it.

``mode=background`` answers 202 once ``task_scheduled`` is committed and is
gated; ``mode=inline`` answers 200 when the work is done and is not: it is the
comparison that shows what the background buys.
"""

from __future__ import annotations

from benchmarks import _calls
from benchmarks._calls import Call
from benchmarks._users import ClosedLoopUser, OpenModelUser


class BackgroundUser(ClosedLoopUser):
    gated = True

    def call(self) -> Call:
        return _calls.process_data(self.options, "background")


class BackgroundOpenUser(OpenModelUser):
    gated = True

    def call(self) -> Call:
        return _calls.process_data(self.options, "background")


class InlineUser(ClosedLoopUser):
    def call(self) -> Call:
        return _calls.process_data(self.options, "inline")


class InlineOpenUser(OpenModelUser):
    def call(self) -> Call:
        return _calls.process_data(self.options, "inline")
