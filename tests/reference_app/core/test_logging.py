"""Logging: the redaction processor, and one JSON stream for our logs and stdlib's."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from structlog.typing import EventDict

from reference_app.core.logging import REDACTED, SecretRedactor, configure_logging, get_logger
from reference_app.main import create_app
from reference_app.tasks.context import TaskContext
from tests.conftest import AUTH_A, ORG_A_KEY, make_settings, wait_for_status

WHSEC = "whsec_c2VjcmV0LXNpZ25pbmcta2V5LTMyLWJ5dGVzLWxvbmc="


def redact(event_dict: EventDict, secrets: tuple[str, ...] = ()) -> EventDict:
    return SecretRedactor(secrets)(None, "info", event_dict)


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """configure_logging replaces the root handlers; put the previous ones back afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


# The redaction processor --------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    [
        "authorization",
        "Authorization",
        "api_key",
        "X-API-Key",
        "apikey",
        "webhook_secret",
        "password",
        "access_token",
        "cookie",
        "Set-Cookie",
    ],
)
def test_a_value_under_a_secret_sounding_key_is_redacted(key: str) -> None:
    assert redact({"event": "request", key: "s3cr3t-value"}) == {"event": "request", key: REDACTED}


def test_a_missing_secret_stays_none_and_other_keys_are_kept() -> None:
    event = {"event": "request", "password": None, "user_id": "alice", "attempt": 2}

    assert redact(event) == event


def test_a_known_secret_is_redacted_inside_any_string() -> None:
    event = {"event": "calling upstream with demo-key-org-a now", "url": "/x?key=demo-key-org-a"}

    assert redact(event, ("demo-key-org-a",)) == {
        "event": f"calling upstream with {REDACTED} now",
        "url": f"/x?key={REDACTED}",
    }


def test_the_longest_known_secret_is_replaced_whole() -> None:
    event = {"event": "key=abcd-longer-key"}

    assert redact(event, ("abcd", "abcd-longer-key")) == {"event": f"key={REDACTED}"}


def test_known_secrets_shorter_than_four_characters_are_ignored() -> None:
    # Otherwise a one-letter key would shred every log line.
    assert redact({"event": "abc"}, ("abc", "a")) == {"event": "abc"}


@pytest.mark.parametrize(
    "text",
    [
        "Authorization: Bearer eyJhbGciOi.payload.sig",
        "authorization=bearer tok_123",
        "sent 'Bearer abc123', got 401",
    ],
)
def test_bearer_tokens_are_redacted_by_shape(text: str) -> None:
    cleaned = redact({"event": text})["event"]

    assert f"Bearer {REDACTED}" in cleaned
    assert not any(token in cleaned for token in ("eyJhbGciOi", "tok_123", "abc123"))


def test_basic_credentials_are_redacted_by_shape() -> None:
    cleaned = redact({"event": "upstream said: Authorization: Basic dXNlcjpwYXNz"})["event"]

    assert cleaned == f"upstream said: Authorization: Basic {REDACTED}"


def test_webhook_secrets_are_redacted_by_shape() -> None:
    cleaned = redact({"event": f"signing with secret={WHSEC} done"})["event"]

    assert cleaned == f"signing with secret={REDACTED} done"


def test_secrets_in_nested_dicts_lists_and_tuples_are_redacted() -> None:
    event = {
        "event": "webhook_sent",
        "request": {
            "headers": {"Authorization": "Bearer abc123", "Accept": "application/json"},
            "notes": ["key demo-key-org-a", ("tuple", f"{WHSEC}")],
        },
    }

    assert redact(event, ("demo-key-org-a",)) == {
        "event": "webhook_sent",
        "request": {
            "headers": {"Authorization": REDACTED, "Accept": "application/json"},
            "notes": [f"key {REDACTED}", ("tuple", REDACTED)],
        },
    }


def test_a_named_tuple_value_survives_redaction() -> None:
    parts = urlsplit("https://hooks.example.com/in?token=demo-key-org-a")

    cleaned = redact({"event": "webhook_target", "parts": parts}, ("demo-key-org-a",))

    assert cleaned["parts"].netloc == "hooks.example.com"
    assert cleaned["parts"].query == f"token={REDACTED}"


# configure_logging ------------------------------------------------------------------------


@pytest.mark.usefixtures("restore_logging")
def test_json_logging_renders_our_events_as_json_lines(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(fmt="json")

    get_logger("tests.logging").info("task_started", task_id="t-1", attempt=1)
    get_logger("tests.logging").debug("too_detailed")

    (line,) = json_lines(capsys.readouterr().err)
    assert line["event"] == "task_started"
    assert (line["task_id"], line["attempt"]) == ("t-1", 1)
    assert (line["level"], line["logger"]) == ("info", "tests.logging")
    assert line["timestamp"].endswith("Z")


@pytest.mark.usefixtures("restore_logging")
def test_auto_format_is_json_when_stderr_is_not_a_terminal(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging(fmt="auto")

    get_logger("tests.logging").info("app_started")

    assert json_lines(capsys.readouterr().err)[0]["event"] == "app_started"


@pytest.mark.usefixtures("restore_logging")
def test_console_format_is_for_people(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(fmt="console")

    get_logger("tests.logging").info("app_started", owner="host:1")

    err = capsys.readouterr().err
    assert "app_started" in err
    assert "owner" in err
    with pytest.raises(json.JSONDecodeError):
        json.loads(err.splitlines()[0])


@pytest.mark.usefixtures("restore_logging")
def test_stdlib_loggers_come_out_as_json_lines_through_the_same_chain(
    capsys: pytest.CaptureFixture[str],
) -> None:
    uvicorn_error = logging.getLogger("uvicorn.error")
    # uvicorn installs its own handler before it imports the app.
    uvicorn_error.addHandler(logging.StreamHandler())
    configure_logging(fmt="json", secrets=[ORG_A_KEY])

    uvicorn_error.info("Started server process [%d]", 4242, extra={"color_message": "\x1b[1m"})
    logging.getLogger("uvicorn.access").info(
        '%s - "%s %s HTTP/%s" %d', "127.0.0.1:5000", "GET", f"/x?k={ORG_A_KEY}", "1.1", 200
    )
    logging.getLogger("sqlalchemy.engine").info("SELECT 1")  # below the engine's WARNING
    logging.getLogger("sqlalchemy.pool").warning("connection invalidated")

    err = capsys.readouterr().err
    lines = json_lines(err)
    assert [(line["logger"], line["level"]) for line in lines] == [
        ("uvicorn.error", "info"),
        ("uvicorn.access", "info"),
        ("sqlalchemy.pool", "warning"),
    ]
    assert lines[0]["event"] == "Started server process [4242]"
    assert "color_message" not in lines[0]
    assert lines[1]["event"] == f'127.0.0.1:5000 - "GET /x?k={REDACTED} HTTP/1.1" 200'
    assert all("timestamp" in line for line in lines)
    assert uvicorn_error.handlers == []
    assert uvicorn_error.propagate is True
    assert ORG_A_KEY not in err


@pytest.mark.usefixtures("restore_logging")
def test_stdlib_extra_fields_and_tracebacks_are_redacted(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging(fmt="json", secrets=[ORG_A_KEY])
    try:
        raise RuntimeError(f"upstream rejected {ORG_A_KEY}")
    except RuntimeError:
        logging.getLogger("uvicorn.error").exception(
            "Exception in ASGI application", extra={"authorization": f"Bearer {ORG_A_KEY}"}
        )

    err = capsys.readouterr().err
    (line,) = json_lines(err)
    assert line["authorization"] == REDACTED
    assert "RuntimeError: upstream rejected [REDACTED]" in line["exception"]
    assert ORG_A_KEY not in err


async def test_a_request_and_its_failing_task_never_log_the_api_key(
    database_url: str, capsys: pytest.CaptureFixture[str], restore_logging: None
) -> None:
    async def careless(ctx: TaskContext) -> dict[str, Any]:
        logging.getLogger("uvicorn.error").warning("calling out with %s", AUTH_A["Authorization"])
        get_logger("tests.careless").info("calling_out", headers=AUTH_A, key=ORG_A_KEY)
        raise ValueError(f"upstream refused {AUTH_A['Authorization']} and {ORG_A_KEY}")

    app = create_app(make_settings(database_url), handlers={"process_data": careless})
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://testserver", headers=AUTH_A
        ) as client:
            response = await client.post(
                "/process-data",
                json={"data": {"n": 1}, "io_ms": 0},
                headers={"X-Request-ID": "req-redact-7"},
            )
            assert response.status_code == 202
            await wait_for_status(client, response.json()["task_id"], "failed")

    err = capsys.readouterr().err
    lines = json_lines(err)  # every line is JSON
    assert ORG_A_KEY not in err
    task_lines = [line for line in lines if line.get("request_id") == "req-redact-7"]
    events = {line["event"] for line in task_lines}
    assert {"task_started", "calling_out", "attempt_failed", "task_failed"} <= events
    assert f"calling out with Bearer {REDACTED}" in events
    (failed,) = [line for line in task_lines if line["event"] == "attempt_failed"]
    assert "ValueError: upstream refused Bearer [REDACTED] and [REDACTED]" in failed["exception"]


@pytest.mark.usefixtures("restore_logging")
def test_the_configured_level_also_governs_uvicorns_loggers(
    capsys: pytest.CaptureFixture[str],
) -> None:
    logging.getLogger("uvicorn.error").setLevel(logging.INFO)  # as uvicorn's own config does
    configure_logging(level="WARNING", fmt="json")

    logging.getLogger("uvicorn.error").info("Waiting for application shutdown.")
    logging.getLogger("uvicorn.error").warning("something to see")

    assert [line["event"] for line in json_lines(capsys.readouterr().err)] == ["something to see"]
