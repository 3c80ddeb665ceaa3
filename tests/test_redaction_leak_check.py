"""Issue #9 point 2: when the export's leak scan blocks, it blocks only the partitions holding the hit,
naming the row (its request_id) and the rule."""

import io
import json

import pyarrow as pa
import pyarrow.parquet as pq

from tracedrop.pipelines.export.checks import check_leak_scan
from tracedrop.pipelines.export.redactors import strict_scanner
from tracedrop.storage.objectstore import open_store

TOKEN = "ghp_" + "Zq8RkV2mWn5tLx9PbC3dHs7Yj4FgA1eK0u"


def staged_file(request_ids: list[str], bodies: list[str]) -> bytes:
    """A staged Parquet file with the columns the leak scan reads."""
    table = pa.table(
        {
            "request_id": request_ids,
            "request_body": bodies,
            "response_body": [json.dumps({"choices": []})] * len(bodies),
        }
    )
    out = io.BytesIO()
    pq.write_table(table, out)
    return out.getvalue()


def test_a_hit_blocks_only_its_partition_and_names_the_request_and_rule(tmp_path) -> None:
    store = open_store(tmp_path)
    clean = json.dumps({"messages": [{"role": "user", "content": "refactor the parser"}]})
    leaky = json.dumps({"messages": [{"role": "user", "content": f"ci pushes with {TOKEN} now"}]})
    store.put("acme/part-0.parquet", staged_file(["req-a1", "req-a2", "req-a3"], [clean, leaky, clean]))
    store.put("beta/part-0.parquet", staged_file(["req-b1"], [clean]))
    partition_of = {"acme/part-0.parquet": ("acme", "e-acme"), "beta/part-0.parquet": ("beta", "e-beta")}

    result = check_leak_scan(store, partition_of, strict_scanner())

    assert not result.passed and not result.blocks_all
    assert result.blocked == {("acme", "e-acme")}
    assert result.problems == ["acme/part-0.parquet request_body: request_id req-a2: github-token ( <github-token>)"]
    assert TOKEN not in "".join(result.problems)


def test_clean_partitions_pass(tmp_path) -> None:
    store = open_store(tmp_path)
    store.put("acme/part-0.parquet", staged_file(["req-a1"], [json.dumps({"messages": []})]))
    result = check_leak_scan(store, {"acme/part-0.parquet": ("acme", "e-acme")}, strict_scanner())
    assert result.passed and result.blocked == set()
