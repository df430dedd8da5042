"""Checks for exercise 04. Run: make check EX=04 (EXERCISE_TARGET=solution for the reference)."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Callable
from types import ModuleType

import httpx
import pytest
from structlog.testing import capture_logs

from exercises._target import load_target


@pytest.fixture(scope="module")
def target() -> ModuleType:
    return load_target("ex04_sync_shield")


@pytest.fixture
async def client(target: ModuleType) -> AsyncIterator[httpx.AsyncClient]:
    target.FAILURES.clear()
    target.WELCOMED.clear()
    # raise_app_exceptions=False: an exception that escapes a task is Starlette's problem, as on
    # a real server, and the checks below look at what happened to the tasks after it.
    transport = httpx.ASGITransport(app=target.app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


async def sign_up(client: httpx.AsyncClient, *, crm_up: bool) -> str:
    response = await client.post("/signups", json={"email": "ada@example.com", "crm_up": crm_up})
    assert response.status_code == 202
    signup_id: str = response.json()["signup_id"]
    return signup_id


async def test_the_welcome_is_sent_when_the_crm_is_up(
    target: ModuleType, client: httpx.AsyncClient
) -> None:
    signup_id = await sign_up(client, crm_up=True)
    welcomed, failures = target.WELCOMED, target.FAILURES
    assert welcomed == [signup_id]
    assert failures == []


async def test_a_failing_def_task_does_not_skip_the_welcome(
    target: ModuleType, client: httpx.AsyncClient
) -> None:
    signup_id = await sign_up(client, crm_up=False)
    welcomed = target.WELCOMED
    assert welcomed == [signup_id], (
        "the CRM failure escaped into Starlette, which skipped the task queued after it"
    )


async def test_the_failure_is_recorded_with_its_ids(
    target: ModuleType, client: httpx.AsyncClient
) -> None:
    signup_id = await sign_up(client, crm_up=False)
    assert len(target.FAILURES) == 1, "a shielded failure must be recorded in FAILURES"
    failure = target.FAILURES[0]
    assert failure["task"] == "sync_to_crm"
    assert failure["signup_id"] == signup_id
    assert failure["error"].startswith("CRMUnavailable")
    assert "email" not in failure  # ids, not personal data


async def test_the_failure_is_logged_with_its_traceback(client: httpx.AsyncClient) -> None:
    with capture_logs() as logs:
        await sign_up(client, crm_up=False)
    failed = [entry for entry in logs if entry["event"] == "task_failed"]
    assert len(failed) == 1, "log task_failed (log.exception) when the shield catches a failure"
    assert failed[0]["log_level"] == "error"
    assert failed[0].get("exc_info") is True  # what log.exception adds: the traceback


def test_the_shielded_task_stays_a_plain_def_with_its_name(target: ModuleType) -> None:
    task = target.sync_to_crm
    assert not inspect.iscoroutinefunction(task), "a def task must stay def: threadpool, not loop"
    assert task.__name__ == "sync_to_crm"
    assert list(inspect.signature(task).parameters) == ["signup_id", "email", "crm_up"]


def test_base_exceptions_pass_through_the_shield(target: ModuleType) -> None:
    shielded: Callable[[Callable[..., None]], Callable[..., None]] = target.shielded_sync

    @shielded
    def interrupted(*, job_id: str) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        interrupted(job_id="j1")
