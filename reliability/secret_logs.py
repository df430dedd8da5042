"""Secrets stay out of the logs: a full scenario with JSON logging, then a search of the output.

Fresh random API keys and webhook secrets, requests that carry them (valid, wrong, in odd
places), a webhook whose receiver fails, a task that fails; then every byte the server
process wrote is searched for every secret.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from reliability._databases import fresh_database, unfinished_tasks
from reliability._hook_receiver import Receiver
from reliability._outcome import Outcome, Scenario
from reliability._served import SERVED_SETTINGS, backend_of, serve

__all__ = ["SCENARIOS", "SecretsRun", "run_secrets", "scenario_with_secrets"]


@dataclass
class SecretsRun:
    """The secrets used, the server's whole output, and what was sent."""

    secrets: dict[str, str]
    log: str = ""
    requests: int = 0
    accepted: int = 0
    unfinished: int = 0
    receiver_hits: int = 0
    statuses: list[int] = field(default_factory=list)

    def leaks(self) -> list[str]:
        """The names of the secrets that appear in the log."""
        return [name for name, value in self.secrets.items() if value in self.log]


def _whsec() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def scenario_with_secrets(database_url: str) -> SecretsRun:
    key_a, key_b = f"sk_a_{secrets.token_urlsafe(24)}", f"sk_b_{secrets.token_urlsafe(24)}"
    wrong = f"sk_wrong_{secrets.token_urlsafe(24)}"
    webhook, previous = _whsec(), _whsec()
    basic = base64.b64encode(f"alice:{key_a}".encode()).decode()
    run = SecretsRun(
        {
            "org A's API key": key_a,
            "org B's API key": key_b,
            "a wrong API key": wrong,
            "the webhook secret": webhook,
            "the webhook secret's key bytes": webhook.removeprefix("whsec_"),
            "the previous webhook secret": previous,
            "a Basic credential": basic,
        }
    )
    settings = {
        **SERVED_SETTINGS,
        "api_keys": json.dumps(
            {key_a: {"user_id": "alice", "org_id": "a"}, key_b: {"user_id": "bob", "org_id": "b"}}
        ),
        "webhook_secret": webhook,
        "webhook_previous_secret": previous,
        "webhook_allow": "127.0.0.1",
        "webhook_max_attempts": "2",
        "webhook_retry_base_seconds": "0.05",
        "webhook_retry_cap_seconds": "0.1",
        "log_level": "DEBUG",
    }
    a = {"Authorization": f"Bearer {key_a}"}
    # The receiver answers 500 to every delivery: the webhook fails, and is logged failing.
    with Receiver() as receiver, serve(database_url, settings) as server:
        hook = receiver.url("/error")
        calls: list[tuple[str, str, dict[str, str], Any]] = [
            ("POST", "/process-data", a, {"data": {"x": 1}, "io_ms": 0, "webhook_url": hook}),
            ("POST", "/import-contacts", a, {"file_id": "missing-contacts.csv"}),  # fails
            ("POST", "/send-notification", {"Authorization": f"Bearer {key_b}"},
             {"email": "bob@example.com", "message": f"my key is {key_b}"}),
            ("POST", "/process-data", {"Authorization": f"Bearer {wrong}"}, {"data": {"x": 1}}),
            ("POST", "/process-data", {"Authorization": f"Basic {basic}"}, {"data": {"x": 1}}),
            ("POST", "/process-data", {**a, "X-Request-ID": key_a, "Idempotency-Key": key_a},
             {"data": {"x": 2}, "io_ms": 0}),
            ("POST", "/process-data", {**a, "Idempotency-Key": key_a},
             {"data": {"x": 3}, "io_ms": 0}),  # same key, other body: 409
            ("POST", "/process-data", {**a, "X-Api-Key": key_a, "Cookie": f"session={key_a}"},
             {"data": {"x": 4}, "io_ms": 0}),
        ]  # fmt: skip
        with httpx.Client(base_url=server.url, timeout=30) as client:
            for method, path, headers, body in calls:
                response = client.request(method, path, headers=headers, json=body)
                run.requests += 1
                run.statuses.append(response.status_code)
                if response.status_code == 202:
                    run.accepted += 1
                    task = response.json()["task_id"]
                    for reader in (a, {"Authorization": f"Bearer {key_b}"}):
                        client.get(f"/tasks/{task}", headers=reader)
                        client.get(f"/tasks/{task}/events", headers=reader)
                        run.requests += 2
            run.unfinished = unfinished_tasks(database_url, seconds=30)
            time.sleep(0.5)  # the last log lines of the delivery's final attempt
        run.receiver_hits = len(receiver.snapshot())
    run.log = server.log_text()  # all of it, including shutdown
    return run


def run_secrets(database_url: str, long: bool = True) -> Outcome:
    run = scenario_with_secrets(database_url)
    if leaks := run.leaks():
        raise AssertionError(f"found in the server's log: {', '.join(leaks)}")
    return Outcome(
        fault="secrets in JSON logs",
        backend=backend_of(database_url),
        load="keys in headers, bodies, ids; failing webhook and task",
        inputs=run.requests,
        accepted=run.accepted,
        lost=run.unfinished,
        duplicates=0,
        notes=(
            f"{len(run.secrets)} secrets searched in {len(run.log.splitlines())} log lines: "
            f"none found; webhook receiver hit {run.receiver_hits} times"
        ),
    )


SCENARIOS = [Scenario("secrets stay out of logs", run_secrets)]

if __name__ == "__main__":
    with fresh_database("sqlite") as db:
        print(run_secrets(db))
