"""Every snapshot table has a declared schema, a run writes exactly it, and schema changes are additive only.

When a table gains a column, declare it in ``pipeline/contracts/schemas.py`` and refresh the checked-in copy with
``.venv/bin/python tests/test_table_schemas.py`` (it refuses a change that is not additive).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from pipeline import load_settings, run_once
from pipeline.contracts.tables import SNAPSHOT_TABLES, schema_document, table_schema

CHECKED_IN = Path(__file__).parent / "data" / "table_schemas.json"


def declared() -> dict[str, list[list[str]]]:
    """The registry as the checked-in JSON spells it."""
    return {table: schema_document(schema) for table, schema in SNAPSHOT_TABLES.items()}


def not_additive(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """Why ``after`` is not ``before`` plus new tables and columns (empty when it is)."""
    found = []
    for table, columns in before.items():
        if table not in after:
            found.append(f"table {table!r} removed")
            continue
        now = dict(map(tuple, after[table]))
        for name, dtype in columns:
            if name not in now:
                found.append(f"{table}.{name} removed or renamed")
            elif now[name] != dtype:
                found.append(f"{table}.{name} changed type {dtype} -> {now[name]}")
        old = [name for name, _ in columns]
        if [name for name, _ in after[table] if name in old] != [name for name in old if name in now]:
            found.append(f"{table}: existing columns reordered")
    return found


@pytest.fixture
def sample_tables() -> dict[tuple[str, str], pl.DataFrame]:
    """Every table one run on the sample data writes (the history's tables and the input problems included)."""
    result = run_once(load_settings())
    return {**result.outputs.tables, ("problems", "every category"): result.problems}


def test_every_table_a_run_writes_has_exactly_its_declared_schema(
    sample_tables: dict[tuple[str, str], pl.DataFrame],
) -> None:
    assert {table for table, _ in sample_tables} == set(SNAPSHOT_TABLES)
    for (table, category), frame in sample_tables.items():
        assert frame.schema == table_schema(table), (table, category)


def test_the_registry_changes_only_additively_and_is_checked_in() -> None:
    before = json.loads(CHECKED_IN.read_text(encoding="utf-8"))
    assert not_additive(before, declared()) == []
    assert declared() == before, "schemas grew: refresh the copy with `.venv/bin/python tests/test_table_schemas.py`"


def test_the_additive_check_refuses_a_removed_retyped_or_reordered_column() -> None:
    before = {"t": [["a", "Int64"], ["b", "String"]]}
    assert not_additive(before, {"t": [["a", "Int64"], ["b", "String"], ["c", "Boolean"]], "u": []}) == []
    assert not_additive(before, {"t": [["a", "Int64"]]}) == ["t.b removed or renamed"]
    assert not_additive(before, {"t": [["a", "Float64"], ["b", "String"]]}) == ["t.a changed type Int64 -> Float64"]
    assert not_additive(before, {"t": [["b", "String"], ["a", "Int64"]]}) == ["t: existing columns reordered"]
    assert not_additive(before, {}) == ["table 't' removed"]


def test_an_undeclared_table_is_named() -> None:
    with pytest.raises(KeyError, match="'nope' is not declared"):
        table_schema("nope")


if __name__ == "__main__":  # refresh the checked-in copy after an additive change
    current = declared()
    if CHECKED_IN.exists():
        problems = not_additive(json.loads(CHECKED_IN.read_text(encoding="utf-8")), current)
        if problems:
            sys.exit("not additive: " + "; ".join(problems))
    CHECKED_IN.write_text(json.dumps(current, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {CHECKED_IN}")
