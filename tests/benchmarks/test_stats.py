"""benchmarks._stats: nearest-rank percentiles, summaries, and the p95 gate (compares with >=)."""

import pytest

from benchmarks._samples import Sample
from benchmarks._stats import by_endpoint, endpoint, gate, percentile, summarize


def sample(ms: float, *, ok: bool = True, gated: bool = True, name: str = "/health") -> Sample:
    return Sample(0.0, "closed", "HealthUser", "GET", name, ms, ok, gated)


def test_percentile_is_the_nearest_rank_and_always_an_observed_value() -> None:
    values = [float(v) for v in range(1, 21)]  # 1..20
    assert percentile(values, 95) == 19.0  # ceil(0.95 * 20) = 19th smallest
    assert percentile(values, 50) == 10.0
    assert percentile(values, 100) == 20.0
    assert percentile([7.5], 99) == 7.5
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0  # unsorted input is fine


def test_percentile_refuses_no_values_and_out_of_range_q() -> None:
    with pytest.raises(ValueError, match="no values"):
        percentile([], 95)
    with pytest.raises(ValueError, match="q must be"):
        percentile([1.0], 0)
    with pytest.raises(ValueError, match="q must be"):
        percentile([1.0], 101)


def test_summarize_puts_the_achieved_rate_next_to_the_percentiles() -> None:
    samples = [sample(float(ms)) for ms in range(1, 101)] + [sample(500.0, ok=False)]
    summary = summarize(samples, window_s=10.0)
    assert summary.count == 101
    assert summary.failures == 1
    assert summary.rps == 10.1
    assert (summary.p50_ms, summary.p95_ms, summary.p99_ms) == (51.0, 96.0, 100.0)
    assert summary.max_ms == 500.0


def test_summarize_of_nothing_has_no_percentiles_and_a_zero_rate() -> None:
    summary = summarize([], window_s=5.0)
    assert summary.as_dict() == {
        "count": 0,
        "failures": 0,
        "rps": 0.0,
        "p50_ms": None,
        "p95_ms": None,
        "p99_ms": None,
        "max_ms": None,
    }
    with pytest.raises(ValueError, match="window_s"):
        summarize([], window_s=0)


def test_the_gate_fails_an_endpoint_whose_p95_is_exactly_the_budget() -> None:
    # Locust buckets 195..204.99 ms into 200; on raw data 200.0 itself must fail, 199.99 pass.
    at_budget = [sample(10.0)] * 94 + [sample(200.0)] * 6
    just_under = [sample(10.0)] * 94 + [sample(199.99)] * 6
    (verdict,) = gate(at_budget, budget_ms=200)
    assert verdict.p95_ms == 200.0
    assert not verdict.passed
    assert verdict.describe().startswith("FAIL GET /health: p95 200.0 ms (budget 200 ms)")
    (verdict,) = gate(just_under, budget_ms=200)
    assert verdict.passed


def test_the_gate_fails_on_failures_beyond_the_allowance_even_when_fast() -> None:
    samples = [sample(1.0)] * 99 + [sample(1.0, ok=False)]
    assert not gate(samples, budget_ms=200)[0].passed
    assert gate(samples, budget_ms=200, max_failures=1)[0].passed


def test_the_gate_judges_each_gated_endpoint_and_ignores_ungated_ones() -> None:
    samples = [
        *[sample(5.0, name="/fast")] * 20,
        *[sample(900.0, name="/slow")] * 20,
        *[sample(5000.0, name="/ignored", gated=False)] * 20,
    ]
    verdicts = {v.endpoint: v.passed for v in gate(samples)}
    assert verdicts == {"GET /fast": True, "GET /slow": False}
    assert gate([sample(1.0, gated=False)]) == []


def test_endpoints_are_named_by_method_and_name_in_order_of_appearance() -> None:
    a, b = sample(1.0, name="/b"), sample(1.0, name="/a")
    assert endpoint(a) == "GET /b"
    assert list(by_endpoint([a, b, a])) == ["GET /b", "GET /a"]
    assert len(by_endpoint([a, b, a])["GET /b"]) == 2
