"""The query plan of a statement, on either backend: which indexes it reads, whether it sorts.

SQLite's ``EXPLAIN QUERY PLAN`` and PostgreSQL's ``EXPLAIN (FORMAT JSON)`` around the
statement itself, its parameters rendered in by their column types (as the driver would
bind them), and run as plain SQL: the plan's rows are not the statement's, so none of
its result types may apply to them.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ClauseElement
from sqlalchemy.ext.asyncio import AsyncSession

__all__ = ["QueryPlan", "query_plan"]

# PostgreSQL plan nodes that sort; SQLite says "USE TEMP B-TREE FOR ORDER BY".
_PG_SORTS = frozenset({"Sort", "Incremental Sort"})
# "SEARCH tasks USING INDEX ix_name (org_id=? AND ...)", "... USING COVERING INDEX ix_name"
_SQLITE_INDEX = re.compile(r"USING (?:COVERING )?INDEX (\S+)")


@dataclass(frozen=True, slots=True)
class QueryPlan:
    """One line per plan step, and what the steps add up to."""

    steps: list[str]
    indexes: list[str]
    """The indexes read, in plan order."""
    full_scans: list[str]
    """The tables read whole (a sequential scan, or a scan of a whole index)."""
    sorts: bool
    raw: Any
    """SQLite's rows, or PostgreSQL's JSON plan (with timings under ANALYZE)."""


async def query_plan(
    session: AsyncSession, statement: ClauseElement, *, analyze: bool = False
) -> QueryPlan:
    """The plan of ``statement``; ``analyze`` (PostgreSQL) runs it and adds the timings."""
    dialect = session.get_bind().dialect
    sql = str(statement.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))
    connection = await session.connection()
    if dialect.name == "sqlite":
        result = await connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}")
        return _sqlite_plan([tuple(row) for row in result])
    options = "FORMAT JSON, ANALYZE" if analyze else "FORMAT JSON"
    document = (await connection.exec_driver_sql(f"EXPLAIN ({options}) {sql}")).scalar_one()
    return _postgres_plan(json.loads(document) if isinstance(document, str) else document)


def _sqlite_plan(rows: list[tuple[Any, ...]]) -> QueryPlan:
    steps = [str(row[-1]) for row in rows]  # (id, parent, notused, detail)
    indexes = [m[1] for s in steps if (m := _SQLITE_INDEX.search(s))]
    return QueryPlan(
        steps=steps,
        indexes=indexes,
        full_scans=[s.split()[1] for s in steps if s.startswith("SCAN ")],
        sorts=any("TEMP B-TREE" in s for s in steps),
        raw=rows,
    )


def _postgres_plan(document: list[dict[str, Any]]) -> QueryPlan:
    nodes: list[dict[str, Any]] = []
    pending = [document[0]["Plan"]]
    while pending:
        node = pending.pop(0)
        nodes.append(node)
        pending.extend(node.get("Plans", []))
    return QueryPlan(
        steps=[_describe(node) for node in nodes],
        indexes=[node["Index Name"] for node in nodes if "Index Name" in node],
        full_scans=[node["Relation Name"] for node in nodes if node["Node Type"] == "Seq Scan"],
        sorts=any(node["Node Type"] in _PG_SORTS for node in nodes),
        raw=document,
    )


def _describe(node: dict[str, Any]) -> str:
    words = [node["Node Type"]]
    if node.get("Scan Direction") == "Backward":
        words.append("Backward")
    if "Index Name" in node:
        words.append(f"using {node['Index Name']}")
    if "Relation Name" in node:
        words.append(f"on {node['Relation Name']}")
    for key in ("Index Cond", "Filter"):
        if key in node:
            words.append(f"{key}: {node[key]}")
    return " ".join(words)
