"""Lesson 07, step 4: crash recovery. This step serves the reference app, the final form.

Step 3 still loses work when its process dies: a task that was running stays
"running" for good, and nothing looks for it. The reference app adds the two
missing pieces on top of the same log and projection:

- a lease: ``task_started`` records an owner and an expiry, and the attempt
  renews the expiry every third of ``APP_LEASE_SECONDS`` while it runs
  (``reference_app/tasks/lease.py``). A killed process stops renewing.
- the sweeper, a loop inside the app (``reference_app/tasks/sweeper.py``). At
  startup and every ``APP_SWEEP_INTERVAL_SECONDS`` it appends
  ``attempt_failed(LeaseExpired)`` + ``retry_scheduled`` for each expired lease
  (``TaskStore.recover_expired_leases``), then claims due tasks with a versioned
  ``task_started``, so of several processes exactly one wins each task.

The work runs at least once: a crash mid-task means a second attempt, so task
bodies must be safe to repeat. Run it with a short lease to watch a recovery:

    APP_DATABASE_URL=sqlite+aiosqlite:///./var/lesson07.db APP_LEASE_SECONDS=2 \
    APP_SWEEP_INTERVAL_SECONDS=0.2 \
    .venv/bin/uvicorn lessons.lesson_07_event_log.step_04_crash_recovery:app --port 8000
"""

from __future__ import annotations

from reference_app.core.config import get_settings
from reference_app.main import create_app

# Every setting comes from APP_* environment variables (see the README's table).
app = create_app(get_settings())
