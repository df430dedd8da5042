"""Checks for exercise 02. Run: make check EX=02 (EXERCISE_TARGET=solution for the reference)."""

from __future__ import annotations

import io
import json
from types import ModuleType

import pytest
import structlog

from exercises._target import load_target


@pytest.fixture(scope="module")
def target() -> ModuleType:
    return load_target("ex02_noisy_processor")


def run(target: ModuleType, method: str, logger: str) -> structlog.typing.EventDict:
    event = {"event": "retrying", "logger": logger}
    result: structlog.typing.EventDict = target.drop_noisy_below_warning(None, method, event)
    return result


@pytest.mark.parametrize("method", ["debug", "info"])
@pytest.mark.parametrize("logger", ["noisy", "noisy.pool"])
def test_noisy_events_below_warning_are_dropped(
    target: ModuleType, method: str, logger: str
) -> None:
    with pytest.raises(structlog.DropEvent):
        run(target, method, logger)


@pytest.mark.parametrize("method", ["warning", "error", "exception", "critical"])
def test_noisy_warnings_and_errors_are_kept(target: ModuleType, method: str) -> None:
    assert run(target, method, "noisy") == {"event": "retrying", "logger": "noisy"}


@pytest.mark.parametrize("logger", ["app", "noisyneighbour", "uvicorn.access"])
def test_other_loggers_keep_their_info_lines(target: ModuleType, logger: str) -> None:
    assert run(target, "info", logger) == {"event": "retrying", "logger": logger}


def test_in_a_chain_only_the_noisy_info_line_is_dropped(target: ModuleType) -> None:
    """The processor in a real chain: the renderer writes only what survives it."""
    out = io.StringIO()
    chain = [target.drop_noisy_below_warning, structlog.processors.JSONRenderer()]
    base = structlog.wrap_logger(structlog.PrintLogger(out), processors=chain)
    for name, method in [("noisy", "info"), ("noisy", "warning"), ("app", "info")]:
        getattr(base.bind(logger=name), method)("retrying")
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [line["logger"] for line in lines] == ["noisy", "app"]
