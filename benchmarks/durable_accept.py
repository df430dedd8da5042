"""The cost of a durable accept: committing ``task_scheduled`` before the 202.

``DurableAcceptUser`` sends the reference app a task with no work at all
(``io_ms=0``), so the response time is the accept: validation, the commit
on SQLite or PostgreSQL (whichever the app runs on), and the answer.
``NonDurableAcceptUser`` is the same accept without a database, against the
lesson 08 load lab (``--host`` of the lab): the task lives only in memory.
"""

from __future__ import annotations

from benchmarks import _calls
from benchmarks._calls import Call
from benchmarks._users import ClosedLoopUser


class DurableAcceptUser(ClosedLoopUser):
    gated = True

    def call(self) -> Call:
        return _calls.process_data(self.options, "background", io_ms=0, cpu_ms=0)


class NonDurableAcceptUser(ClosedLoopUser):
    gated = True

    def call(self) -> Call:
        return _calls.lab_work("async-io", 0)
