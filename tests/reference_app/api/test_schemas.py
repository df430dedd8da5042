"""What a JSON column on either database can hold: the request schemas refuse the rest."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from reference_app.api.schemas import ProcessDataIn, SendNotificationIn, storable_json


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ({"a": "x\x00"}, "NUL"),
        ({"a\x00": 1}, "NUL"),
        ({"a": ["\udb91"]}, "surrogate"),
        ({"a": [float("nan")]}, "NaN"),
        ({"a": {"b": float("-inf")}}, "NaN and Infinity"),
    ],
)
def test_values_postgresql_json_refuses_are_refused_with_a_reason(value: Any, problem: str):
    with pytest.raises(ValueError, match=problem):
        storable_json(value)


def test_ordinary_json_passes_unchanged():
    value = {"a": "caf\u00e9 \U0001f600", "b": 1.5, "c": None, "d": [1, True, {"e": []}]}

    assert storable_json(value) is value


def test_deep_nesting_is_walked_without_recursion():
    value: dict[str, Any] = {"leaf": float("nan")}
    for _ in range(5_000):
        value = {"child": value}

    with pytest.raises(ValueError, match="NaN"):
        storable_json(value)


def test_a_process_data_body_with_nan_is_a_validation_error_on_data():
    with pytest.raises(ValidationError) as caught:
        ProcessDataIn.model_validate({"data": {"x": float("nan")}})

    assert caught.value.errors()[0]["loc"] == ("data",)


def test_a_notification_message_with_nul_is_a_validation_error_on_message():
    with pytest.raises(ValidationError) as caught:
        SendNotificationIn.model_validate({"email": "a@example.com", "message": "hi\x00"})

    assert caught.value.errors()[0]["loc"] == ("message",)
