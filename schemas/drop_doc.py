"""The column table of docs/drop.md, generated from DROP_COLUMNS so the docs and the files cannot drift.

``python -m tracedrop.schemas.drop_doc`` rewrites the table between the markers in docs/drop.md
(see schemas/doc_tables.py).
"""

from __future__ import annotations

import io
import sys

import pyarrow.parquet as pq

from tracedrop.schemas.doc_tables import GeneratedTable
from tracedrop.schemas.drop import DROP_COLUMNS, DROP_SCHEMA


def parquet_types() -> dict[str, str]:
    """Each top-level column's Parquet type, as pyarrow writes DROP_SCHEMA (physical and logical)."""
    buffer = io.BytesIO()
    pq.write_table(DROP_SCHEMA.empty_table(), buffer)
    schema = pq.ParquetFile(buffer).schema
    leaves: dict[str, list[str]] = {}
    for index in range(len(schema)):
        column = schema.column(index)
        logical = column.logical_type
        if logical.type == "TIMESTAMP":
            unit = column.converted_type.removeprefix("TIMESTAMP_").lower()
            text = f"{column.physical_type} (TIMESTAMP, {unit}, UTC)"
        elif logical.type == "NONE":
            text = column.physical_type
        else:
            text = f"{column.physical_type} ({logical.type})"
        leaves.setdefault(column.path.split(".")[0], []).append(text)
    return {
        name: types[0] if len(types) == 1 else f"MAP (key {types[0]}, value {types[1]})"
        for name, types in leaves.items()
    }


def column_table() -> str:
    """The Markdown table of every drop column: name, Arrow type, Parquet type, null, meaning."""
    parquet = parquet_types()
    lines = [
        "| column | Arrow type | Parquet type | null? | meaning |",
        "|---|---|---|---|---|",
    ]
    for column in DROP_COLUMNS:
        nulls = "may be null" if column.nullable else "never null"
        description = column.description.replace("|", "\\|")
        lines.append(f"| `{column.name}` | `{column.type}` | {parquet[column.name]} | {nulls} | {description} |")
    return "\n".join(lines)


TABLE = GeneratedTable("drop.md", "columns", "tracedrop.schemas.drop_doc", "schemas/drop.py", column_table)


if __name__ == "__main__":
    sys.exit(TABLE.main())
