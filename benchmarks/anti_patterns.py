"""Lesson 08's load lab: background work done right and wrong, at a fixed arrival rate.

Point ``--host`` at ``lessons.lesson_08_under_load.step_04_load_lab:app``. Each
user schedules ``--work-ms`` of one kind of work per request. The ANTI-PATTERNS
(blocking call and CPU work inside ``async def``) freeze the event loop: watch
the /health probe. ``def`` tasks saturate the threadpool's 40 tokens once more
than 40 run at once: watch the backlog. None of these is gated; showing the
breakage is their point. ``LabBlockingInAsyncClosedUser`` sends the same work
from closed-loop users, to show how much of the breakage they hide.
"""

from __future__ import annotations

from benchmarks import _calls
from benchmarks._calls import Call
from benchmarks._users import ClosedLoopUser, OpenModelUser


class _LabUser(OpenModelUser):
    abstract = True
    kind = ""

    def call(self) -> Call:
        return _calls.lab_work(self.kind, self.options.work_ms)


class LabAsyncIoUser(_LabUser):
    kind = "async-io"


class LabSyncIoUser(_LabUser):
    kind = "sync-io"


class LabBlockingInAsyncUser(_LabUser):
    kind = "blocking-in-async"


class LabBlockingInAsyncClosedUser(ClosedLoopUser):
    """The same frozen loop, measured by closed-loop users: they wait, so it looks milder."""

    def call(self) -> Call:
        return _calls.lab_work("blocking-in-async", self.options.work_ms)


class LabCpuInAsyncUser(_LabUser):
    kind = "cpu-in-async"


class LabCpuOffloadedUser(_LabUser):
    kind = "cpu-offloaded"


class LabBoundedUser(_LabUser):
    kind = "bounded"
