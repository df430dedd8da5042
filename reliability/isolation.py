"""Org isolation: org B can neither read, list nor infer org A's tasks, even by Idempotency-Key.

Another org's task answers exactly as a task that does not exist: 404 with the same body
(never 403, which would confirm that it exists).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

import httpx

from reliability._databases import fresh_database, unfinished_tasks
from reliability._outcome import Outcome, Scenario
from reliability._served import AUTH_A, AUTH_B, backend_of, serve

__all__ = ["SCENARIOS", "IsolationReport", "check_isolation", "run_isolation"]

JOB = {"data": {"owner": "org-a"}, "io_ms": 0}
OTHER_JOB = {"data": {"owner": "org-a", "n": 2}, "io_ms": 0}
SHARED_KEY = "order-42"  # Idempotency-Keys both orgs happen to choose
OTHER_KEY = "order-43"


@dataclass
class IsolationReport:
    requests: int = 0
    accepted: int = 0
    leaks: list[str] = field(default_factory=list)


def _get(client: httpx.Client, path: str, report: IsolationReport) -> httpx.Response:
    report.requests += 1
    return client.get(path)


def _post(
    client: httpx.Client, body: dict[str, object], key: str, report: IsolationReport
) -> httpx.Response:
    report.requests += 1
    response = client.post("/process-data", json=body, headers={"Idempotency-Key": key})
    if response.status_code == 202:
        report.accepted += 1
    return response


def _same_answer(a: httpx.Response, b: httpx.Response) -> bool:
    return (a.status_code, a.content, a.headers.get("content-type")) == (
        b.status_code,
        b.content,
        b.headers.get("content-type"),
    )


def check_isolation(base_url: str) -> IsolationReport:
    """Probe the server at ``base_url`` as org B for org A's work; every leak is listed."""
    report = IsolationReport()
    a = httpx.Client(base_url=base_url, headers=AUTH_A, timeout=30)
    b = httpx.Client(base_url=base_url, headers=AUTH_B, timeout=30)
    with a, b:
        created = _post(a, JOB, SHARED_KEY, report)
        assert created.status_code == 202, created.text
        task_id = created.json()["task_id"]
        before = _get(a, f"/tasks/{task_id}", report).json()
        unknown = str(uuid.uuid4())

        # Read: the task and its events, compared with an id that never existed.
        for suffix in ("", "/events"):
            theirs = _get(b, f"/tasks/{task_id}{suffix}", report)
            nobody = _get(b, f"/tasks/{unknown}{suffix}", report)
            if theirs.status_code != 404:
                report.leaks.append(f"GET /tasks/{{A's id}}{suffix} as B: {theirs.status_code}")
            if not _same_answer(theirs, nobody):
                report.leaks.append(
                    f"GET /tasks/{{id}}{suffix} as B: A's task and a missing one differ: "
                    f"{theirs.status_code} {theirs.text!r} vs {nobody.status_code} {nobody.text!r}"
                )
        # List: each org sees its own tasks only.
        mine, theirs = _get(a, "/tasks", report), _get(b, "/tasks", report)
        if mine.status_code != 200 or task_id not in mine.text:
            raise AssertionError(f"GET /tasks as A does not list A's task: {mine.text!r}")
        if theirs.status_code != 200 or task_id in theirs.text:
            report.leaks.append(f"GET /tasks as B: {theirs.status_code}, lists A's task")
        # Act: cancel and re-drive of A's task, as B, answer as for an id that never existed.
        for action in ("cancel", "retry"):
            report.requests += 2
            theirs = b.post(f"/tasks/{task_id}/{action}")
            nobody = b.post(f"/tasks/{unknown}/{action}")
            if theirs.status_code != 404 or not _same_answer(theirs, nobody):
                report.leaks.append(
                    f"POST /tasks/{{A's id}}/{action} as B: {theirs.status_code} {theirs.text!r}"
                )

        # Infer through Idempotency-Key. A used SHARED_KEY with JOB and OTHER_KEY with
        # OTHER_JOB. B's same key and body must make B's own task (not return A's), and B's
        # key with another body must not be A's 409: either would tell B what A sent.
        a_other = _post(a, OTHER_JOB, OTHER_KEY, report)
        same = _post(b, JOB, SHARED_KEY, report)
        different = _post(b, JOB, OTHER_KEY, report)
        for name, response in (("same key and body", same), ("same key, other body", different)):
            if response.status_code != 202:
                report.leaks.append(f"B's {name}: {response.status_code} {response.text!r}")
            elif response.json()["task_id"] in (task_id, a_other.json()["task_id"]):
                report.leaks.append(f"B's {name} returned A's task id")
        if same.status_code == 202:
            own = _get(b, f"/tasks/{same.json()['task_id']}", report)
            if own.status_code != 200:
                report.leaks.append(f"B cannot read its own task: {own.status_code}")
            if _get(a, f"/tasks/{same.json()['task_id']}", report).status_code != 404:
                report.leaks.append("A can read B's task")
        # A's own replay still finds A's task, untouched by B.
        replay = _post(a, JOB, SHARED_KEY, report)
        report.accepted -= replay.status_code == 202  # a replay creates nothing
        if replay.status_code != 202 or replay.json()["task_id"] != task_id:
            report.leaks.append(f"A's replay: {replay.status_code} {replay.text!r}")
        after = _get(a, f"/tasks/{task_id}", report).json()
        if after["kind"] != before["kind"] or after["created_at"] != before["created_at"]:
            report.leaks.append("A's task changed while B probed it")
    return report


def run_isolation(database_url: str, long: bool = True) -> Outcome:
    with serve(database_url) as server:
        report = check_isolation(server.url)
        lost = unfinished_tasks(database_url, seconds=30)
    if report.leaks:
        raise AssertionError("; ".join(report.leaks))
    return Outcome(
        fault="org B probes org A",
        backend=backend_of(database_url),
        load="reads, events, listing, cancel and retry, Idempotency-Key reuse",
        inputs=report.requests,
        accepted=report.accepted,
        lost=lost,
        duplicates=0,
        notes="404 with identical bodies for another org's and a missing id; never 403",
    )


SCENARIOS = [Scenario("org isolation", run_isolation)]

if __name__ == "__main__":
    with fresh_database("sqlite") as url:
        print(run_isolation(url))
