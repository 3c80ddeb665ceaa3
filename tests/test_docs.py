"""The docs cannot fall behind the code: every CLI command and option, environment variable, drop column,
exclusion and quarantine reason is documented; links stay inside the repository; the drop's column
descriptions travel in the published Parquet files; and the partner reading examples work on a real drop."""

from __future__ import annotations

import ast
import json
import re
import subprocess
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest
import typer
import yaml
from pydantic import BaseModel
from typer.testing import CliRunner

from tests.landing_builder import ACME_EXPERIMENT, ACME_V1, ACME_V2, DT, NOON, LandingBuilder, partners_yaml
from tracedrop.pipelines.cli import app
from tracedrop.pipelines.replay_assets import ReplayResource
from tracedrop.pipelines.resources import TracedropResource
from tracedrop.schemas import drop_doc
from tracedrop.schemas.drop import DROP_COLUMNS, DROP_SCHEMA, MANIFEST_NAME
from tracedrop.schemas.exclusions import Exclusion
from tracedrop.schemas.partners import Partner, PartnerRegistry
from tracedrop.schemas.proxy_config import Client, Experiment, ProxyConfig, Route, Upstream, Variant, Version
from tracedrop.schemas.reader import QuarantineReason
from tracedrop.storage.objectstore import open_store

REPO = Path(__file__).resolve().parent.parent
DOCS = sorted((REPO / "docs").glob("*.md"))
CODE_DIRS = ("pipelines", "replay", "schemas")
ENV_NAME = re.compile(r"\b(?:TRACEDROP|AWS)_[A-Z0-9_]+\b")
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.S | re.M)


def docs_text() -> str:
    return "\n".join(path.read_text(encoding="utf-8") for path in DOCS)


def documented(name: str) -> bool:
    """``name`` appears as inline code somewhere in docs/*.md."""
    return f"`{name}`" in docs_text() or re.search(rf"`[^`\n]*\b{re.escape(name)}\b[^`\n]*`", docs_text()) is not None


def cli_commands() -> Iterator[tuple[str, list[str]]]:
    """(``tracedrop sub command``, its option and argument spellings) for every leaf command of the app."""

    def walk(command, path: list[str]) -> Iterator[tuple[str, list[str]]]:
        if hasattr(command, "commands"):
            for name, sub in command.commands.items():
                yield from walk(sub, [*path, name])
            return
        spellings: list[str] = []
        for param in command.params:
            opts = [*param.opts, *getattr(param, "secondary_opts", [])]
            spellings += [o for o in opts if o.startswith("-")] or [param.name.upper()]
        yield " ".join(["tracedrop", *path]), spellings

    yield from walk(typer.main.get_command(app), [])


def cli_section(command: str) -> str:
    """The part of docs/cli.md under ``## `command` `` (up to the next ``##`` heading)."""
    text = (REPO / "docs" / "cli.md").read_text(encoding="utf-8")
    match = re.search(rf"^## `{re.escape(command)}`\n(.*?)(?=^## |\Z)", text, re.S | re.M)
    return match.group(1) if match else ""


def environment_names() -> set[str]:
    """Every ``TRACEDROP_*`` / ``AWS_*`` name in the code and shipped configs, and every literal name the code
    reads with ``os.environ.get``, ``os.environ[...]``, ``os.getenv`` or holds in a ``*_ENV`` constant."""
    names: set[str] = set()
    for directory in CODE_DIRS:
        for path in (REPO / directory).rglob("*.py"):
            source = path.read_text(encoding="utf-8")
            names |= set(ENV_NAME.findall(source))
            names |= _literal_reads(ast.parse(source))
        for path in (REPO / directory).rglob("*.yaml"):
            names |= {n for n in ENV_NAME.findall(path.read_text(encoding="utf-8")) if n.startswith("TRACEDROP_")}
    return names


def _literal_reads(tree: ast.AST) -> set[str]:
    def is_environ(node: ast.AST) -> bool:
        return isinstance(node, ast.Attribute) and node.attr == "environ"

    found: set[str] = set()
    for node in ast.walk(tree):
        target = None
        if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            func = node.func
            if isinstance(func, ast.Attribute) and (
                (func.attr == "get" and is_environ(func.value)) or func.attr == "getenv"
            ):
                target = node.args[0].value
        elif isinstance(node, ast.Subscript) and is_environ(node.value) and isinstance(node.slice, ast.Constant):
            target = node.slice.value
        elif (
            isinstance(node, ast.Assign)
            and isinstance(node.value, ast.Constant)
            and any(isinstance(t, ast.Name) and t.id.endswith("_ENV") for t in node.targets)
        ):
            target = node.value.value
        if isinstance(target, str) and re.fullmatch(r"[A-Z][A-Z0-9_]+", target):
            found.add(target)
    return found


def test_every_cli_command_and_option_is_in_docs_cli() -> None:
    commands = list(cli_commands())
    assert {"tracedrop export", "tracedrop consent apply", "tracedrop replay run"} <= {c for c, _ in commands}
    for command, spellings in commands:
        section = cli_section(command)
        assert section, f"docs/cli.md has no section '## `{command}`'"
        missing = [s for s in spellings if not re.search(rf"`{re.escape(s)}\b", section)]
        assert not missing, f"docs/cli.md, {command}: options not documented: {missing}"


def test_every_environment_variable_the_code_reads_is_documented() -> None:
    names = environment_names()
    assert {"TRACEDROP_LANDING_URL", "TRACEDROP_S3_ENDPOINT_URL", "DAGSTER_HOME", "AWS_ENDPOINT_URL"} <= names
    missing = sorted(n for n in names if not documented(n))
    assert not missing, f"environment variables read by the code but not in docs/*.md: {missing}"


def test_every_drop_column_is_described_in_the_schema_and_in_docs_drop() -> None:
    for field in DROP_SCHEMA:
        assert field.metadata and field.metadata[b"description"].strip(), f"{field.name} has no description"
    text = (REPO / "docs" / "drop.md").read_text(encoding="utf-8")
    stale = "docs/drop.md's column table is stale: run python -m tracedrop.schemas.drop_doc"
    assert drop_doc.TABLE.render(text) == text, stale
    for column in DROP_COLUMNS:
        assert f"| `{column.name}` |" in text and column.description.replace("|", "\\|") in text


def test_the_column_table_is_regenerated_between_its_markers() -> None:
    table = drop_doc.TABLE
    stale = f"intro\n{table.begin}\n| old table |\n{table.end}\noutro\n"
    fresh = table.render(stale)
    assert fresh.startswith("intro\n") and fresh.endswith(f"{table.end}\noutro\n")
    assert "| old table |" not in fresh and "| `request_kind` |" in fresh
    assert table.render(fresh) == fresh
    with pytest.raises(ValueError, match="markers are missing"):
        table.render("no markers here")


def yaml_keys(node: object, prefix: str = "") -> Iterator[str]:
    """Dotted paths of every mapping key in a YAML document (lists are walked through)."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield f"{prefix}{key}"
            yield from yaml_keys(value, f"{prefix}{key}.")
    elif isinstance(node, list):
        for item in node:
            yield from yaml_keys(item, prefix)


@pytest.mark.parametrize(
    "model",
    [PartnerRegistry, Partner, ProxyConfig, Client, Route, Experiment, Variant, Version, Upstream],
    ids=lambda m: m.__name__,
)
def test_every_config_key_is_in_docs_configuration(model: type[BaseModel]) -> None:
    text = (REPO / "docs" / "configuration.md").read_text(encoding="utf-8")
    missing = [key for key in model.model_fields if f"`{key}`" not in text]
    assert not missing, f"docs/configuration.md: {model.__name__} keys not documented: {missing}"


def test_the_dagster_instance_file_and_resources_are_in_docs_configuration() -> None:
    text = (REPO / "docs" / "configuration.md").read_text(encoding="utf-8")
    instance = yaml.safe_load((REPO / "pipelines" / "dagster.yaml").read_text(encoding="utf-8"))
    keys = [k for k in yaml_keys(instance) if k.count(".") < 3]  # below that: the values of one limit
    resources = [*(f"tracedrop.{f}" for f in TracedropResource.model_fields)]
    resources += [f"replay.{f}" for f in ReplayResource.model_fields]
    missing = [k for k in [*keys, *resources] if f"`{k}`" not in text and f"`{k}." not in text]
    assert not missing, f"docs/configuration.md does not document: {missing}"


@pytest.mark.parametrize("reason", [*(e.value for e in Exclusion), *QuarantineReason.ALL])
def test_every_exclusion_and_quarantine_reason_is_documented(reason: str) -> None:
    explained = f"`{reason}`" in docs_text()
    assert explained, f"reason {reason!r} is not explained in docs/*.md"


@pytest.mark.parametrize("page", [REPO / "README.md", *DOCS], ids=lambda p: p.name)
def test_links_stay_inside_the_repository_and_resolve(page: Path) -> None:
    text = FENCE.sub("", page.read_text(encoding="utf-8"))
    text = re.sub(r"`[^`\n]*`", "", text)
    for target in LINK.findall(text):
        external = re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I) is not None
        assert not external, f"{page.name}: link leaves the repository: {target}"
        path = target.split("#", 1)[0]
        if not path:
            continue
        resolved = (page.parent / path).resolve()
        assert resolved.is_relative_to(REPO), f"{page.name}: link points outside the repository: {target}"
        assert resolved.exists(), f"{page.name}: link to a missing file: {target}"


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A partition published by ``tracedrop export`` from a small landing zone (local paths, no Dagster home)."""
    root = tmp_path_factory.mktemp("drop")
    builder = LandingBuilder.with_default_experiments()
    for n in range(6):
        builder.request(
            NOON + timedelta(minutes=n),
            version=ACME_V1 if n % 2 else ACME_V2,
            user=f"user-{n}",
            session=f"ses_{n % 2}",
            turn=f"turn-{n}",
        )
    builder.feedback(NOON + timedelta(hours=1), "turn-1", "up")
    builder.write(open_store(root / "landing"))
    (root / "partners.yaml").write_text(partners_yaml(str(root / "drops")))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TRACEDROP_SALT_ACME", "docs-test-acme")
        patch.setenv("TRACEDROP_SALT_BETA", "docs-test-beta")
        patch.delenv("DAGSTER_HOME", raising=False)
        args = ["export", "--landing", str(root / "landing"), "--partners", str(root / "partners.yaml")]
        result = CliRunner().invoke(app, [*args, "--date", DT, "--partner", "acme"])
    assert result.exit_code == 0, result.output
    yield root / "drops" / f"partner=acme/experiment={ACME_EXPERIMENT}/dt={DT}"


def code_block(language: str, containing: str) -> str:
    """The first fenced ``language`` block of docs/drop.md that contains ``containing``."""
    text = (REPO / "docs" / "drop.md").read_text(encoding="utf-8")
    for block in re.findall(rf"^```{language}\n(.*?)^```", text, re.S | re.M):
        if containing in block:
            return block
    raise AssertionError(f"docs/drop.md has no {language} block with {containing!r}")


def test_a_published_file_carries_the_column_descriptions(published: Path) -> None:
    manifest = json.loads((published / MANIFEST_NAME).read_text())
    schema = pq.read_schema(published / manifest["files"][0]["name"])
    assert schema.remove_metadata().equals(DROP_SCHEMA.remove_metadata())
    assert {f.name: f.metadata[b"description"].decode() for f in schema} == {
        c.name: c.description for c in DROP_COLUMNS
    }
    assert schema.metadata[b"schema_version"] == b"1"


def test_every_manifest_field_of_a_real_partition_is_in_docs_drop(published: Path) -> None:
    manifest = json.loads((published / MANIFEST_NAME).read_text())
    text = (REPO / "docs" / "drop.md").read_text(encoding="utf-8")
    fields = [*manifest, *manifest["files"][0], *manifest["source_watermark"], "republished_for"]
    missing = [f for f in fields if f"`{f}`" not in text]
    assert not missing, f"docs/drop.md does not explain manifest fields {missing}"


def test_the_documented_python_reader_reads_a_published_partition_and_refuses_a_changed_one(
    published: Path, tmp_path: Path
) -> None:
    namespace: dict[str, object] = {}
    exec(code_block("python", "def read_partition"), namespace)  # the docs' own example, run as written
    read_partition = namespace["read_partition"]
    rows = read_partition(published)
    assert rows.height == 6 and set(rows["partner_id"]) == {"acme"}
    assert set(rows["feedback_rating"].drop_nulls()) == {"up"}

    copy = tmp_path / "partition"
    copy.mkdir()
    for path in published.iterdir():
        (copy / path.name).write_bytes(path.read_bytes())
    (copy / "_SUCCESS").unlink()
    assert read_partition(copy) is None
    (copy / "_SUCCESS").write_bytes(b"")
    part = copy / json.loads((copy / MANIFEST_NAME).read_text())["files"][0]["name"]
    part.write_bytes(part.read_bytes() + b"\0")
    with pytest.raises(ValueError, match="changed while reading"):
        read_partition(copy)


def test_the_documented_duckdb_query_reads_exactly_the_manifest_files(published: Path) -> None:
    (published / "part-99999.parquet").write_bytes((published / "part-00000.parquet").read_bytes())  # a leftover
    sql = code_block("sql", "getvariable('files')")
    sql = re.sub(r"SET VARIABLE partition = '[^']*'", f"SET VARIABLE partition = '{published}'", sql)
    try:
        rows = duckdb.connect().sql(sql).fetchall()
    finally:
        (published / "part-99999.parquet").unlink()
    assert sum(count for _, count, _ in rows) == 6


def test_the_documented_shell_check_verifies_the_files(published: Path) -> None:
    line = code_block("bash", "sha256sum").splitlines()[-1]
    assert subprocess.run(["bash", "-c", line], cwd=published, capture_output=True).returncode == 0
    (published / "_SUCCESS").rename(published / "away")
    try:
        assert subprocess.run(["bash", "-c", line], cwd=published, capture_output=True).returncode != 0
    finally:
        (published / "away").rename(published / "_SUCCESS")


def test_redact_prints_the_redacted_text_and_exits_0_as_docs_cli_says(tmp_path: Path) -> None:
    (tmp_path / "trace.txt").write_text("mail alice@example.com please")
    result = CliRunner().invoke(app, ["redact", str(tmp_path / "trace.txt")])
    assert result.exit_code == 0
    assert result.stdout == "mail <REDACTED:email> please"


def test_redact_of_an_unreadable_file_is_one_line_and_exit_2_as_docs_cli_says(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["redact", str(tmp_path / "missing.txt")])
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        f"tracedrop redact: {tmp_path / 'missing.txt'}: cannot be read (No such file or directory); "
        "give a readable file or - for standard input"
    ]
    assert "Exit 0; 2 when the file cannot be read." in cli_section("tracedrop redact")
