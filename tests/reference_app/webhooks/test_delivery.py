"""Webhook deliveries through the app, over a fake network (MockTransport) and a fake DNS."""

from __future__ import annotations

import asyncio
import re
import uuid
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from reference_app.core.clock import utcnow
from reference_app.db.engine import SessionFactory, session_scope
from reference_app.db.models import GoneWebhookURL, Task, TaskEvent
from reference_app.tasks.context import TaskContext
from reference_app.tasks.errors import PermanentError
from tests.conftest import AUTH_B
from tests.reference_app.webhooks.conftest import (
    METADATA_URL,
    PREVIOUS_SECRET,
    SECRET,
    WAIT,
    FakeResolver,
    ScriptedReceiver,
    build_app,
    delivery_events,
    events_of,
    running,
    submit,
    verify,
    wait_for_delivery,
    webhook_settings,
)

HOOK = "http://127.0.0.1:8000/hooks/task"
PUBLIC_HOOK = "https://hooks.example.com/x"
PUBLIC_IP = "93.184.216.34"


def when(value: str) -> datetime:
    return datetime.fromisoformat(value)


def of_type(events: list[dict[str, Any]], type_: str) -> list[dict[str, Any]]:
    return [e for e in events if e["type"] == type_]


async def wait_for_delivery_event(
    client: httpx.AsyncClient, task_id: str, type_: str, seconds: float = WAIT
) -> list[dict[str, Any]]:
    """Poll until the task's delivery stream holds a ``type_`` event; the task's events."""
    async with asyncio.timeout(seconds):
        while True:
            events = await events_of(client, task_id)
            if any(e["type"] == type_ and e["stream_id"] != task_id for e in events):
                return events
            await asyncio.sleep(0.02)


async def failing_task(ctx: TaskContext) -> dict[str, Any]:
    raise PermanentError("the input file is corrupt")


# The message ---------------------------------------------------------------------------


async def test_a_succeeded_task_posts_a_signed_task_succeeded_message(database_url: str) -> None:
    network = ScriptedReceiver()
    app = build_app(webhook_settings(database_url), network.transport)

    async with running(app) as client:
        task_id = await submit(client, HOOK)
        task = await wait_for_delivery(client, task_id)
        events = await events_of(client, task_id)

    assert task["webhook"]["status"] == "delivered"
    [sent] = network.sent
    assert sent.url == httpx.URL(HOOK)
    assert sent.headers["content-type"] == "application/json"
    payload = verify(sent.headers, sent.body)
    assert payload == {
        "type": "task.succeeded",
        "timestamp": payload["timestamp"],
        "data": {
            "task_id": task_id,
            "kind": "process_data",
            "status": "succeeded",
            "result": task["result"],
        },
    }
    # The message's time is when the task ended, in UTC.
    [succeeded] = [e for e in of_type(events, "task_succeeded") if e["stream_id"] == task_id]
    assert when(payload["timestamp"]) == when(succeeded["at"])
    assert when(payload["timestamp"]).utcoffset() == timedelta(0)
    assert sent.headers["webhook-id"].startswith("msg_")
    assert abs(int(sent.headers["webhook-timestamp"]) - sent.at.timestamp()) <= 2


async def test_a_failed_task_posts_task_failed_with_its_error(database_url: str) -> None:
    network = ScriptedReceiver()
    app = build_app(
        webhook_settings(database_url), network.transport, handlers={"process_data": failing_task}
    )

    async with running(app) as client:
        task_id = await submit(client, HOOK)
        task = await wait_for_delivery(client, task_id)

    assert task["status"] == "failed"
    assert task["webhook"]["status"] == "delivered"
    [sent] = network.sent
    payload = verify(sent.headers, sent.body)
    assert payload["type"] == "task.failed"
    assert payload["data"] == {
        "task_id": task_id,
        "kind": "process_data",
        "status": "failed",
        "error": "PermanentError: the input file is corrupt",
    }


async def test_during_a_key_rotation_both_keys_verify_the_delivery(database_url: str) -> None:
    network = ScriptedReceiver()
    settings = webhook_settings(database_url, webhook_previous_secret=PREVIOUS_SECRET)
    app = build_app(settings, network.transport)

    async with running(app) as client:
        await wait_for_delivery(client, await submit(client, HOOK))

    [sent] = network.sent
    assert len(sent.headers["webhook-signature"].split(" ")) == 2
    assert verify(sent.headers, sent.body, SECRET)["type"] == "task.succeeded"
    assert verify(sent.headers, sent.body, PREVIOUS_SECRET)["type"] == "task.succeeded"
    with pytest.raises(WebhookVerificationError):
        Webhook("whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldY").verify(sent.body, dict(sent.headers))


async def test_without_a_rotation_there_is_one_signature_and_the_old_key_fails(
    database_url: str,
) -> None:
    network = ScriptedReceiver()
    app = build_app(webhook_settings(database_url), network.transport)

    async with running(app) as client:
        await wait_for_delivery(client, await submit(client, HOOK))

    [sent] = network.sent
    assert len(sent.headers["webhook-signature"].split(" ")) == 1
    with pytest.raises(WebhookVerificationError):
        verify(sent.headers, sent.body, PREVIOUS_SECRET)


async def test_retries_keep_the_webhook_id_and_body_and_sign_each_attempt_anew(
    database_url: str,
) -> None:
    # Retry-After: 1 within [0.05, 2] makes the retry exactly a second later, so the
    # two attempts' unix-second timestamps must differ.
    network = ScriptedReceiver(
        [httpx.Response(503, headers={"Retry-After": "1"}), httpx.Response(200)]
    )
    settings = webhook_settings(database_url, webhook_retry_cap_seconds=2.0)
    app = build_app(settings, network.transport)

    async with running(app) as client:
        task = await wait_for_delivery(client, await submit(client, HOOK))

    assert task["webhook"]["status"] == "delivered"
    assert task["webhook"]["attempts"] == 2
    first, second = network.sent
    assert first.headers["webhook-id"] == second.headers["webhook-id"]
    assert first.body == second.body
    assert int(second.headers["webhook-timestamp"]) > int(first.headers["webhook-timestamp"])
    for sent in network.sent:
        assert verify(sent.headers, sent.body)["data"]["task_id"] == task["task_id"]
        assert abs(int(sent.headers["webhook-timestamp"]) - sent.at.timestamp()) <= 1.5


# Retry or fail --------------------------------------------------------------------------

RETRYABLE = [
    pytest.param(httpx.ConnectError("connection refused"), "ConnectError", None, id="connect"),
    pytest.param(httpx.ReadTimeout("read timed out"), "ReadTimeout", None, id="read-timeout"),
    pytest.param(httpx.Response(408), "RetryableResponse", 408, id="408"),
    pytest.param(httpx.Response(429), "RetryableResponse", 429, id="429"),
    pytest.param(httpx.Response(500), "RetryableResponse", 500, id="500"),
    pytest.param(httpx.Response(503), "RetryableResponse", 503, id="503"),
]


@pytest.mark.parametrize(("failure", "error_type", "status_code"), RETRYABLE)
async def test_a_transient_failure_is_retried_and_each_attempt_is_recorded(
    database_url: str, failure: httpx.Response | Exception, error_type: str, status_code: int | None
) -> None:
    network = ScriptedReceiver([failure, httpx.Response(204)])
    app = build_app(webhook_settings(database_url), network.transport)

    async with running(app) as client:
        task_id = await submit(client, HOOK)
        task = await wait_for_delivery(client, task_id)
        stream = delivery_events(task, await events_of(client, task_id))

    assert task["webhook"]["status"] == "delivered"
    assert task["webhook"]["attempts"] == 2
    assert len(network.sent) == 2
    assert [e["type"] for e in stream] == [
        "task_scheduled",
        "task_started",
        "attempt_failed",
        "retry_scheduled",
        "task_started",
        "task_succeeded",
    ]
    failed, retry, succeeded = stream[2], stream[3], stream[5]
    assert failed["payload"]["attempt"] == 1
    assert failed["payload"]["error_type"] == error_type
    assert failed["payload"]["transient"] is True
    assert failed["payload"].get("status_code") == status_code
    assert failed["payload"]["duration_ms"] >= 0
    assert retry["payload"]["reason"] == error_type
    assert 0 <= retry["payload"]["delay_seconds"] <= 0.2  # full jitter under the 0.2 s cap
    assert succeeded["payload"]["attempt"] == 2
    assert succeeded["payload"]["result"] == {"status_code": 204}
    assert succeeded["payload"]["duration_ms"] >= 0


async def test_transient_failures_stop_at_max_attempts(database_url: str) -> None:
    network = ScriptedReceiver([httpx.Response(500)])
    app = build_app(webhook_settings(database_url), network.transport)

    async with running(app) as client:
        task_id = await submit(client, HOOK)
        task = await wait_for_delivery(client, task_id)
        stream = delivery_events(task, await events_of(client, task_id))

    assert task["webhook"]["status"] == "failed"
    assert task["webhook"]["attempts"] == 3
    assert len(network.sent) == 3
    assert [e["payload"]["attempt"] for e in of_type(stream, "attempt_failed")] == [1, 2, 3]
    assert len(of_type(stream, "retry_scheduled")) == 2
    assert stream[-1]["type"] == "task_failed"
    assert task["webhook"]["last_error"] == "RetryableResponse: receiver answered 500"
    assert task["status"] == "succeeded"  # the task itself is not touched by its webhook


def _http_date_in(seconds: float) -> str:
    return format_datetime(datetime.now(UTC) + timedelta(seconds=seconds), usegmt=True)


# Every expected delay is at least 2 s, so the retry cannot run before the test reads it.
@pytest.mark.parametrize(
    ("status", "retry_after", "base", "cap", "low", "high"),
    [
        pytest.param(503, "3", 0.05, 10.0, 3.0, 3.0, id="seconds"),
        pytest.param(429, "4", 0.05, 10.0, 4.0, 4.0, id="seconds-on-429"),
        pytest.param(503, "0", 2.0, 10.0, 2.0, 2.0, id="seconds-raised-to-base"),
        pytest.param(503, "86400", 0.05, 5.0, 5.0, 5.0, id="seconds-cut-to-cap"),
        pytest.param(503, "http-date+30", 0.05, 60.0, 20.0, 30.0, id="http-date"),
        pytest.param(503, "http-date+3600", 0.05, 60.0, 60.0, 60.0, id="http-date-cut-to-cap"),
        pytest.param(503, "http-date-3600", 2.0, 10.0, 2.0, 2.0, id="http-date-past"),
    ],
)
async def test_retry_after_sets_the_recorded_delay_within_the_policy_bounds(
    database_url: str,
    status: int,
    retry_after: str,
    base: float,
    cap: float,
    low: float,
    high: float,
) -> None:
    if retry_after.startswith("http-date"):
        retry_after = _http_date_in(float(retry_after.removeprefix("http-date")))
    network = ScriptedReceiver([httpx.Response(status, headers={"Retry-After": retry_after})])
    settings = webhook_settings(
        database_url, webhook_retry_base_seconds=base, webhook_retry_cap_seconds=cap
    )
    app = build_app(settings, network.transport)

    async with running(app) as client:
        task_id = await submit(client, HOOK)
        events = await wait_for_delivery_event(client, task_id, "retry_scheduled")
        task = (await client.get(f"/tasks/{task_id}")).json()

    stream = delivery_events(task, events)
    [failed] = of_type(stream, "attempt_failed")
    [retry] = of_type(stream, "retry_scheduled")
    delay = retry["payload"]["delay_seconds"]
    assert low <= delay <= high
    assert failed["payload"]["status_code"] == status
    due = when(retry["payload"]["due_at"])
    assert abs((due - when(failed["at"])).total_seconds() - delay) < 0.002
    assert task["webhook"]["status"] == "pending"
    assert when(task["webhook"]["next_attempt_at"]) == due


@pytest.mark.parametrize("retry_after", [b"soon", b"\xb2"], ids=["word", "latin-1-superscript"])
async def test_an_unreadable_retry_after_falls_back_to_the_backoff(
    database_url: str, retry_after: bytes
) -> None:
    # b"\xb2" is not UTF-8, so httpx reads it as latin-1 "²", which str.isdigit() accepts.
    network = ScriptedReceiver(
        [httpx.Response(503, headers=[(b"retry-after", retry_after)]), httpx.Response(200)]
    )
    app = build_app(webhook_settings(database_url), network.transport)

    async with running(app) as client:
        task_id = await submit(client, HOOK)
        task = await wait_for_delivery(client, task_id)
        stream = delivery_events(task, await events_of(client, task_id))

    [failed] = of_type(stream, "attempt_failed")
    assert (failed["payload"]["error_type"], failed["payload"]["transient"]) == (
        "RetryableResponse",
        True,
    )
    [retry] = of_type(stream, "retry_scheduled")
    assert 0 <= retry["payload"]["delay_seconds"] <= 0.05  # attempt 1's full-jitter ceiling
    assert task["webhook"]["status"] == "delivered"
    assert len(network.sent) == 2


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
async def test_another_4xx_fails_at_once(database_url: str, status: int) -> None:
    network = ScriptedReceiver([httpx.Response(status)])
    app = build_app(webhook_settings(database_url), network.transport)

    async with running(app) as client:
        task_id = await submit(client, HOOK)
        task = await wait_for_delivery(client, task_id)
        stream = delivery_events(task, await events_of(client, task_id))

    assert task["webhook"]["status"] == "failed"
    assert task["webhook"]["attempts"] == 1
    assert len(network.sent) == 1
    assert [e["type"] for e in stream][-2:] == ["attempt_failed", "task_failed"]
    assert stream[-2]["payload"]["status_code"] == status
    assert stream[-2]["payload"]["transient"] is False
    assert task["webhook"]["last_error"] == (
        f"RefusedResponse: receiver refused the delivery with {status}"
    )


@pytest.mark.parametrize("status", [301, 302, 307, 308])
async def test_a_redirect_is_a_failed_delivery_and_is_not_followed(
    database_url: str, status: int
) -> None:
    network = ScriptedReceiver([httpx.Response(status, headers={"Location": METADATA_URL})])
    app = build_app(webhook_settings(database_url), network.transport)

    async with running(app) as client:
        task_id = await submit(client, HOOK)
        task = await wait_for_delivery(client, task_id)
        stream = delivery_events(task, await events_of(client, task_id))

    assert [s.url for s in network.sent] == [httpx.URL(HOOK)]
    assert task["webhook"]["status"] == "failed"
    assert task["webhook"]["attempts"] == 1
    assert "not followed" in task["webhook"]["last_error"]
    assert METADATA_URL in task["webhook"]["last_error"]
    assert stream[-2]["payload"]["status_code"] == status


async def test_a_410_fails_and_stops_later_deliveries_to_that_url_for_that_org(
    database_url: str, sessions: SessionFactory
) -> None:
    network = ScriptedReceiver([httpx.Response(410), httpx.Response(200)])
    app = build_app(webhook_settings(database_url), network.transport)

    async with running(app) as client:
        gone = await wait_for_delivery(client, await submit(client, HOOK))
        later = await wait_for_delivery(client, await submit(client, HOOK))
        other_url = await wait_for_delivery(client, await submit(client, HOOK + "-v2"))
        other_org_id = await submit(client, HOOK, headers=AUTH_B)
        other_org = await wait_for_delivery(client, other_org_id, headers=AUTH_B)

    assert gone["webhook"]["status"] == "failed"
    assert gone["webhook"]["attempts"] == 1
    assert "410 Gone" in gone["webhook"]["last_error"]
    # The same URL in the same org: failed without a request.
    assert later["webhook"]["status"] == "failed"
    assert "410 Gone before" in later["webhook"]["last_error"]
    # Another URL, or another org's use of the same URL, still gets its delivery.
    assert other_url["webhook"]["status"] == "delivered"
    assert other_org["webhook"]["status"] == "delivered"
    assert [s.url for s in network.sent] == [
        httpx.URL(HOOK),
        httpx.URL(HOOK + "-v2"),
        httpx.URL(HOOK),
    ]
    async with session_scope(sessions) as session:
        marked = (await session.execute(select(GoneWebhookURL.org_id, GoneWebhookURL.url))).all()
    assert [tuple(row) for row in marked] == [("org-a", HOOK)]


# What the API shows ---------------------------------------------------------------------


async def test_the_delivery_reads_pending_until_it_is_delivered(database_url: str) -> None:
    gate = asyncio.Event()
    network = ScriptedReceiver(gate=gate)
    app = build_app(webhook_settings(database_url), network.transport)

    async with running(app) as client:
        task_id = await submit(client, HOOK)
        await asyncio.wait_for(network.arrived.wait(), WAIT)  # in flight, held at the gate
        pending = (await client.get(f"/tasks/{task_id}")).json()
        gate.set()
        delivered = await wait_for_delivery(client, task_id)

    assert pending["status"] == "succeeded"
    assert pending["webhook"]["status"] == "pending"
    assert pending["webhook"]["attempts"] == 1
    assert pending["webhook"]["finished_at"] is None
    assert delivered["webhook"]["status"] == "delivered"
    assert delivered["webhook"]["delivery_id"] == pending["webhook"]["delivery_id"]
    assert delivered["webhook"]["last_error"] is None
    assert delivered["webhook"]["finished_at"] is not None


async def test_delivery_events_are_listed_with_the_task_in_their_own_stream(
    database_url: str,
) -> None:
    network = ScriptedReceiver([httpx.Response(500), httpx.Response(200)])
    app = build_app(webhook_settings(database_url), network.transport)

    async with running(app) as client:
        task_id = await submit(client, HOOK)
        task = await wait_for_delivery(client, task_id)
        events = await events_of(client, task_id)
        delivery_id = task["webhook"]["delivery_id"]
        as_a_task = await client.get(f"/tasks/{delivery_id}")

    own = [e for e in events if e["stream_id"] == task_id]
    stream = delivery_events(task, events)
    assert len(own) + len(stream) == len(events)
    assert [e["type"] for e in own] == ["task_scheduled", "task_started", "task_succeeded"]
    assert [e["version"] for e in own] == [1, 2, 3]
    assert [e["version"] for e in stream] == list(range(1, len(stream) + 1))
    assert len(stream) == 6
    # Enqueued in the transaction that ended the task: right after its terminal event.
    assert events.index(stream[0]) == events.index(own[-1]) + 1
    assert stream[0]["payload"]["kind"] == "webhook_delivery"
    assert stream[0]["payload"]["parent_id"] == task_id
    assert [e["id"] for e in events] == sorted(e["id"] for e in events)
    # A delivery is part of its task, not a task of the API.
    assert as_a_task.status_code == 404


# Durable retries ------------------------------------------------------------------------


async def test_a_pending_retry_survives_a_restart_and_is_not_sent_early(
    database_url: str, sessions: SessionFactory
) -> None:
    busy = ScriptedReceiver([httpx.Response(503, headers={"Retry-After": "2"})])
    first_app = build_app(
        webhook_settings(database_url, webhook_retry_cap_seconds=60.0), busy.transport
    )
    async with running(first_app) as client:
        task_id = await submit(client, HOOK)
        events = await wait_for_delivery_event(client, task_id, "retry_scheduled")
        task = (await client.get(f"/tasks/{task_id}")).json()
    [retry] = of_type(delivery_events(task, events), "retry_scheduled")
    due = when(retry["payload"]["due_at"])
    assert retry["payload"]["delay_seconds"] == 2.0

    # The first app is gone; only the database remembers the retry.
    async with session_scope(sessions) as session:
        row = await session.get(Task, uuid.UUID(task["webhook"]["delivery_id"]))
        assert row is not None
        assert (row.status, row.run_after, row.attempts) == ("retrying", due, 1)

    working = ScriptedReceiver()
    second_app = build_app(webhook_settings(database_url), working.transport)
    async with running(second_app) as client:
        if utcnow() < due - timedelta(seconds=0.5):
            await asyncio.sleep(0.25)  # several sweeps, all before the due time
            assert working.sent == []
        task = await wait_for_delivery(client, task_id)
        stream = delivery_events(task, await events_of(client, task_id))

    assert task["webhook"]["status"] == "delivered"
    assert task["webhook"]["attempts"] == 2
    assert len(busy.sent) == 1
    [resent] = working.sent
    assert resent.at >= due
    assert when(of_type(stream, "task_started")[1]["at"]) >= due
    assert resent.headers["webhook-id"] == busy.sent[0].headers["webhook-id"]
    assert resent.body == busy.sent[0].body
    assert verify(resent.headers, resent.body)["data"]["task_id"] == task_id


# The SSRF guard at send time --------------------------------------------------------------


async def test_the_delivery_connects_to_the_checked_address_under_the_url_host(
    database_url: str,
) -> None:
    network = ScriptedReceiver()
    resolver = FakeResolver({"hooks.example.com": [PUBLIC_IP]})
    app = build_app(webhook_settings(database_url), network.transport, resolver)

    async with running(app) as client:
        task = await wait_for_delivery(client, await submit(client, PUBLIC_HOOK))

    assert task["webhook"]["status"] == "delivered"
    [sent] = network.sent
    assert sent.url == httpx.URL(f"https://{PUBLIC_IP}/x")
    assert sent.headers["host"] == "hooks.example.com"
    assert sent.extensions["sni_hostname"] == "hooks.example.com"
    assert resolver.lookups == ["hooks.example.com"]


async def test_an_internationalised_host_is_sent_under_its_ascii_name(database_url: str) -> None:
    # The Host header and SNI must be ASCII: the IDNA form of the name, not its Unicode form.
    network = ScriptedReceiver()
    resolver = FakeResolver(
        {"b\u00fccher.example": [PUBLIC_IP], "xn--bcher-kva.example": [PUBLIC_IP]}
    )
    app = build_app(webhook_settings(database_url), network.transport, resolver)

    async with running(app) as client:
        task = await wait_for_delivery(
            client, await submit(client, "https://b\u00fccher.example/x")
        )

    assert task["webhook"]["last_error"] is None
    assert task["webhook"]["status"] == "delivered"
    [sent] = network.sent
    assert sent.url == httpx.URL(f"https://{PUBLIC_IP}/x")
    assert sent.headers["host"] == "xn--bcher-kva.example"


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param(["10.0.0.5"], id="private"),
        pytest.param([PUBLIC_IP, "169.254.169.254"], id="one-record-of-two"),
        pytest.param(["::ffff:127.0.0.1"], id="ipv4-mapped-loopback"),
    ],
)
async def test_a_dns_answer_that_turns_private_is_blocked_at_send_time(
    database_url: str, answer: list[str]
) -> None:
    network = ScriptedReceiver()
    resolver = FakeResolver({"hooks.example.com": [PUBLIC_IP]})
    app = build_app(webhook_settings(database_url), network.transport, resolver)

    async with running(app) as client:
        before = await wait_for_delivery(client, await submit(client, PUBLIC_HOOK))
        resolver.answers["hooks.example.com"] = answer  # the record flips (DNS rebinding)
        task_id = await submit(client, PUBLIC_HOOK)
        after = await wait_for_delivery(client, task_id)
        stream = delivery_events(after, await events_of(client, task_id))

    assert before["webhook"]["status"] == "delivered"
    assert after["webhook"]["status"] == "failed"
    assert after["webhook"]["attempts"] == 1
    assert "blocked by the SSRF guard" in after["webhook"]["last_error"]
    assert "hooks.example.com resolves to" in after["webhook"]["last_error"]
    assert stream[-2]["payload"]["transient"] is False
    assert len(network.sent) == 1  # only the delivery made before the flip
    assert resolver.lookups == ["hooks.example.com", "hooks.example.com"]


# The SSRF guard at submission -------------------------------------------------------------


async def _count_rows(sessions: SessionFactory) -> tuple[int, int]:
    async with session_scope(sessions) as session:
        tasks = await session.scalar(select(func.count()).select_from(Task))
        events = await session.scalar(select(func.count()).select_from(TaskEvent))
    return tasks or 0, events or 0


_JOB = {"data": {"a": 1}}


@pytest.mark.parametrize(
    ("path", "body", "url", "reason"),
    [
        pytest.param("/process-data", _JOB, METADATA_URL, "link-local", id="metadata"),
        pytest.param(
            "/process-data?mode=inline", _JOB, METADATA_URL, "link-local", id="metadata-inline"
        ),
        pytest.param(
            "/import-contacts", {"file_id": "a.csv"}, METADATA_URL, "link-local", id="import"
        ),
        pytest.param(
            "/send-notification",
            {"email": "ada@example.com", "message": "hi"},
            METADATA_URL,
            "link-local",
            id="notify",
        ),
        pytest.param("/process-data", _JOB, "http://127.0.0.1:8000/hook", "loopback", id="loop"),
        # A name that does not resolve here, refused by name.
        pytest.param(
            "/process-data",
            _JOB,
            "http://metadata.google.internal/computeMetadata/v1/",
            "metadata.google.internal is Google Cloud's metadata server; use a public host",
            id="metadata-name",
        ),
        pytest.param(
            "/send-notification",
            {"email": "ada@example.com", "message": "hi"},
            "http://Billing.Internal./hook",
            r"billing\.internal is a \.internal name",
            id="internal-suffix",
        ),
        pytest.param(
            "/process-data", _JOB, "http://[::ffff:10.0.0.1]/hook", "private", id="v4-mapped"
        ),
        # Unicode spellings that IDNA (httpx, browsers) turns into 127.0.0.1.
        pytest.param(
            "/process-data",
            _JOB,
            "http://127.0.0.1\u3002/hook",
            r"127\.0\.0\.1|dot",
            id="ideographic-dot",
        ),
        pytest.param(
            "/process-data",
            _JOB,
            "http://\uff11\uff12\uff17.\uff10.\uff10.\uff11/hook",
            r"127\.0\.0\.1",
            id="fullwidth-digits",
        ),
    ],
)
async def test_a_blocked_webhook_url_is_a_422_naming_the_field_and_writes_nothing(
    client: httpx.AsyncClient,
    sessions: SessionFactory,
    path: str,
    body: dict[str, Any],
    url: str,
    reason: str,
) -> None:
    response = await client.post(path, json={**body, "webhook_url": url})

    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["loc"] == ["body", "webhook_url"]
    assert error["msg"].startswith("webhook_url is not allowed:")
    assert re.search(reason, error["msg"])
    assert await _count_rows(sessions) == (0, 0)
