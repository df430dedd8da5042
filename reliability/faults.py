"""The fault scenarios of ``make reliability``: crashes, shutdowns, two apps, database and
webhook trouble. Each runs real uvicorn processes on 127.0.0.1 against one database.

The bounded variants (``long=False``) run in ``tests/reliability/test_faults*.py``; the
report runs ``long=True``. ``pg_restart`` stops the local PostgreSQL server, so it runs only
in ``make reliability`` (and under the ``pg_restart`` test marker), never in ``make test``.
"""

from __future__ import annotations

from reliability._crash import sigkill_mid_flight, sigterm_graceful
from reliability._db_trouble import pg_restart, pg_terminate_backends, sqlite_locked
from reliability._outcome import Scenario
from reliability._two_apps import two_apps_race
from reliability._webhook_faults import webhook_faults

__all__ = ["SCENARIOS"]

SCENARIOS: list[Scenario] = [
    Scenario("SIGKILL mid-flight", sigkill_mid_flight),
    Scenario("SIGTERM, graceful", sigterm_graceful),
    Scenario("two app processes", two_apps_race, backends=("postgresql",)),
    Scenario("PostgreSQL connections killed", pg_terminate_backends, backends=("postgresql",)),
    Scenario("SQLite database locked", sqlite_locked, backends=("sqlite",)),
    Scenario("webhook receiver faults", webhook_faults),
    # Last: it stops the shared PostgreSQL server for a few seconds (and always restarts it).
    Scenario("PostgreSQL server restarted", pg_restart, backends=("postgresql",)),
]
