"""The ASGI app (``reference_app.main:app``) and its lifespan."""

from __future__ import annotations

import gc
import multiprocessing
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import asynccontextmanager
from datetime import datetime, timedelta

import httpx
from fastapi import FastAPI

from reference_app.api.routes import controls, health, jobs, tasks
from reference_app.api.routes import metrics as metrics_routes
from reference_app.api.routes import schedules as schedule_routes
from reference_app.core.body_limit import BodyLimitMiddleware
from reference_app.core.clock import utcnow
from reference_app.core.config import Settings, get_settings
from reference_app.core.errors import install_error_handlers
from reference_app.core.logging import configure_logging, get_logger
from reference_app.core.request_id import RequestIdMiddleware
from reference_app.db.engine import create_engine, create_read_engine, create_session_factory
from reference_app.db.migrate import upgrade_database
from reference_app.db.schema import require_current_schema
from reference_app.metrics import AcceptTimer, Metrics
from reference_app.store import TaskStore
from reference_app.tasks.context import Handler
from reference_app.tasks.handlers import HANDLERS, SCHEDULES, example_schedule
from reference_app.tasks.kinds import TaskKind
from reference_app.tasks.retry import RetryPolicy
from reference_app.tasks.scheduler import Scheduler
from reference_app.tasks.schedules import Schedule
from reference_app.tasks.sweeper import Sweeper
from reference_app.tasks.worker import Worker
from reference_app.webhooks.client import create_http_client
from reference_app.webhooks.delivery import WebhookSender
from reference_app.webhooks.enqueue import WEBHOOK_KIND, delivery_hook
from reference_app.webhooks.ssrf import AllowList, Resolver, system_resolver

__all__ = ["app", "create_app"]

log = get_logger(__name__)


def create_app(
    settings: Settings | None = None,
    *,
    handlers: Mapping[str, Handler | TaskKind] | None = None,
    http_transport: httpx.AsyncBaseTransport | None = None,
    resolver: Resolver = system_resolver,
    schedules: Sequence[Schedule] = (),
    clock: Callable[[], datetime] = utcnow,
) -> FastAPI:
    """Build the app. Production reads the environment; tests pass settings, task kinds
    (a bare handler, or a ``TaskKind`` with its mode, concurrency and retry policy),
    an HTTP transport (``httpx.MockTransport``), a DNS resolver, periodic schedules
    (beside ``SCHEDULES``) and the clock that decides when work is due."""
    settings = settings or get_settings()
    configure_logging(level=settings.log_level, fmt=settings.log_format, secrets=settings.api_keys)
    # Off (nothing recorded, /metrics not mounted) unless a scraper's token is set.
    metrics = None
    if settings.metrics_token is not None:
        metrics = Metrics.from_settings(settings, webhook_kind=WEBHOOK_KIND)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_engine(settings.database_url, pool_size=settings.db_pool_size)
        try:
            if settings.should_migrate_on_startup:
                await upgrade_database(engine)
            # A database this code cannot use: one log line and no start, not a 500 per request.
            await require_current_schema(
                engine, within_seconds=settings.schema_check_timeout_seconds
            )
        except BaseException:
            await engine.dispose()
            raise
        sessions = create_session_factory(engine)
        read_engine = create_read_engine(settings.database_url)
        read_sessions = create_session_factory(read_engine) if read_engine else sessions
        webhook_policy = RetryPolicy(
            max_attempts=settings.webhook_max_attempts,
            base_seconds=settings.webhook_retry_base_seconds,
            cap_seconds=settings.webhook_retry_cap_seconds,
        )
        # Group commit on both backends: a commit per accepted task is what capped the
        # accept rate, on SQLite (one writer) and on PostgreSQL (a pooled connection each).
        store = TaskStore(
            sessions,
            max_attempts=settings.task_max_attempts,
            group_commit=True,
            read_sessions=read_sessions,
            max_due=settings.max_due_tasks,
            clock=clock,
            # The webhooks package's side effect of a task's end, in the same transaction.
            terminal_hooks=[delivery_hook(max_attempts=webhook_policy.max_attempts)],
            observers=[metrics.recorder] if metrics else (),
        )
        # spawn, not fork: forking a process that runs an event loop and holds sockets is unsafe.
        cpu_pool = ProcessPoolExecutor(
            settings.cpu_workers, mp_context=multiprocessing.get_context("spawn")
        )
        http_client = create_http_client(
            connect_timeout=settings.webhook_connect_timeout_seconds,
            read_timeout=settings.webhook_read_timeout_seconds,
            write_timeout=settings.webhook_write_timeout_seconds,
            pool_timeout=settings.webhook_pool_timeout_seconds,
            max_connections=settings.webhook_max_connections,
            transport=http_transport,
        )
        sender = WebhookSender(
            http_client,
            secrets=settings.webhook_secrets,
            allow=AllowList.from_setting(settings.webhook_allow),
            resolver=resolver,
        )
        worker = Worker(
            store=store,
            handlers={
                **HANDLERS,
                # An awaited POST: it shares the general slots, and retries over hours.
                WEBHOOK_KIND: TaskKind(sender.deliver, retry=webhook_policy),
                **(handlers or {}),
            },
            policy=RetryPolicy(
                max_attempts=settings.task_max_attempts,
                base_seconds=settings.task_retry_base_seconds,
                cap_seconds=settings.task_retry_cap_seconds,
            ),
            capacity=settings.max_concurrent_tasks,
            lease_seconds=settings.lease_seconds,
            sessions=sessions,
            cpu_pool=cpu_pool,
            cpu_slots=settings.cpu_workers,
            timeout_seconds=settings.task_timeout_seconds,
            cancel_grace_seconds=settings.task_cancel_grace_seconds,
        )
        sweeper = Sweeper(
            store,
            worker,
            interval=settings.sweep_interval_seconds,
            on_pass=metrics.sweeper_hook(worker) if metrics else None,
        )
        example = settings.example_schedule_seconds
        scheduler = Scheduler(
            store,
            [
                *SCHEDULES,
                *([example_schedule(timedelta(seconds=example))] if example else []),
                *schedules,
            ],
            default_org=settings.schedule_org_id,
            interval=settings.scheduler_interval_seconds,
            kinds=worker.kinds,
            on_enqueued=sweeper.wake,  # a slot's task is due at once: sweep now
        )
        app.state.scheduler = scheduler
        app.state.engine, app.state.sessions = engine, sessions
        app.state.store, app.state.worker, app.state.sweeper = store, worker, sweeper
        app.state.http_client = http_client
        sweeper.start()
        scheduler.start()
        # Startup leaves ~100k long-lived objects; a full collection over them froze the
        # event loop for 40-70 ms under load. Freeze them out of every later collection.
        gc.collect()
        gc.freeze()
        log.info(
            "app_started",
            database=engine.url.render_as_string(hide_password=True),
            owner=worker.owner,
        )
        try:
            yield
        finally:
            # uvicorn has already waited for requests and their background tasks.
            await scheduler.stop()
            await sweeper.stop()
            await worker.drain(settings.shutdown_grace_seconds)
            await http_client.aclose()  # after the tasks that use it have drained
            await store.close()
            cpu_pool.shutdown(wait=False, cancel_futures=True)
            await engine.dispose()
            if read_engine is not None:
                await read_engine.dispose()
            if metrics is not None:
                metrics.close()
            log.info("app_stopped")

    app = FastAPI(
        title="fastapi-background-jobs reference app",
        summary="Durable, event-sourced background work with FastAPI's native BackgroundTasks.",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.settings, app.state.metrics = settings, metrics
    install_error_handlers(app, on_outage=metrics.recorder.database_outage if metrics else None)
    app.add_middleware(BodyLimitMiddleware, max_body_bytes=settings.max_body_bytes)
    app.add_middleware(RequestIdMiddleware)
    if metrics is not None:
        app.add_middleware(AcceptTimer, recorder=metrics.recorder)  # outermost: times it all
        app.include_router(metrics_routes.router)
    app.include_router(health.router)
    app.include_router(jobs.router)
    app.include_router(tasks.router)
    app.include_router(controls.router)
    app.include_router(schedule_routes.router)
    return app


app = create_app()
