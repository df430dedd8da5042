"""Property-based fuzzing of the live API from its own ``/openapi.json``, with schemathesis.

Every operation gets ``examples`` generated requests (schema-valid ones, then schema-invalid
ones), sent with org A's key. A 5xx, an undocumented status code, a wrong content type or a
body that breaks the response schema is a failure.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import hypothesis
import schemathesis
from hypothesis import HealthCheck, Phase, Verbosity, given
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.core.failures import FailureGroup
from schemathesis.core.result import Err

from reliability._databases import fresh_database, unfinished_tasks
from reliability._outcome import Outcome, Scenario
from reliability._served import AUTH_A, backend_of, serve

__all__ = ["CHECKS", "SCENARIOS", "FuzzResult", "fuzz_api", "run_fuzz"]

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
# Real work would make fuzzing slow: cap it (the capped bodies stay schema-valid). Delayed
# work would wait days, and count as lost when the run checks that every task finished.
_CAPS = {"io_ms": 20, "cpu_ms": 0, "delay_seconds": 0}


@dataclass
class FuzzResult:
    examples: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)
    """Operation label and mode -> the first failure's message."""


def _cap(case: schemathesis.Case[Any]) -> None:
    if isinstance(case.body, dict):
        case.body.pop("run_at", None)
        for key, cap in _CAPS.items():
            value = case.body.get(key)
            if isinstance(value, int) and not isinstance(value, bool) and value > cap:
                case.body[key] = cap


def _fuzz_operation(
    operation: schemathesis.APIOperation[Any, Any, Any, Any],
    mode: GenerationMode,
    base_url: str,
    examples: int,
    seed: int | None,
    result: FuzzResult,
) -> None:
    @hypothesis.settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=seed is not None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
        verbosity=Verbosity.quiet,  # failures are collected and reported, not printed
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def check(case: schemathesis.Case[Any]) -> None:
        if mode is GenerationMode.POSITIVE:
            _cap(case)
        response = case.call(base_url=base_url, headers=dict(AUTH_A), timeout=30)
        result.examples += 1
        result.statuses[response.status_code] = result.statuses.get(response.status_code, 0) + 1
        case.validate_response(response, checks=CHECKS)

    check()


def fuzz_api(base_url: str, *, examples: int, seed: int | None = 0) -> FuzzResult:
    """Fuzz every operation of the server at ``base_url``; failures are collected, not raised."""
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    result = FuzzResult()
    for operation in schema.get_all_operations():
        if isinstance(operation, Err):
            raise operation.err()  # the app's own schema must load
        api_operation = operation.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            try:
                _fuzz_operation(api_operation, mode, base_url, examples, seed, result)
            except hypothesis.errors.Unsatisfiable:
                continue  # e.g. no schema-invalid request exists for GET /health
            # A failed check (schemathesis raises a BaseExceptionGroup), with its reproduction.
            except (Exception, FailureGroup) as exc:
                label = f"{api_operation.label} [{mode.value}]"
                result.failures[label] = f"{type(exc).__name__}: {exc}"
    return result


def run_fuzz(database_url: str, long: bool = True) -> Outcome:
    """The fuzz as a row of the report: 50 examples per operation and mode when ``long``."""
    examples = 50 if long else 10
    with serve(database_url) as server:
        result = fuzz_api(server.url, examples=examples, seed=None if long else 0)
        lost = unfinished_tasks(database_url, seconds=60)
    if result.failures:
        raise AssertionError(
            f"{len(result.failures)} failing operations: "
            + "; ".join(f"{k}: {v[:1500]}" for k, v in result.failures.items())
        )
    accepted = result.statuses.get(202, 0) + result.statuses.get(200, 0)
    return Outcome(
        fault="schemathesis fuzzing",
        backend=backend_of(database_url),
        load=f"up to {examples} examples per operation and mode",
        inputs=result.examples,
        accepted=accepted,
        lost=lost,
        duplicates=0,
        notes="no 5xx, every response matches the schema; statuses "
        + ", ".join(f"{k}x{v}" for k, v in sorted(result.statuses.items())),
    )


SCENARIOS = [Scenario("schemathesis fuzzing", run_fuzz)]

if __name__ == "__main__":
    with fresh_database("sqlite") as url, serve(url) as served:
        found = fuzz_api(served.url, examples=10)
    print(dataclasses.asdict(found))
