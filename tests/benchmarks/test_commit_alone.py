"""benchmarks._commit_alone: one INSERT + COMMIT at a fixed rate, on a real database."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import create_engine, inspect

from benchmarks._commit_alone import commit_alone


def test_it_commits_at_the_rate_and_leaves_no_table_behind(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    result = commit_alone(f"sqlite+aiosqlite:///{path}", rate=200.0, seconds=0.25)
    assert result["commit_alone_count"] == 50
    assert result["commit_alone_rate"] == 200.0
    p50, p95, p99 = (result[f"commit_alone_p{q}_ms"] for q in (50, 95, 99))
    assert 0 < p50 <= p95 <= p99
    engine = create_engine(f"sqlite:///{path}")
    try:
        assert "bench_commit_alone" not in inspect(engine).get_table_names()
    finally:
        engine.dispose()
