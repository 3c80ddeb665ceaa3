"""The replay spec file: the options of ``tracedrop replay run`` and ``replay report`` as YAML.

```yaml
schema_version: 1
run:      # every option of `tracedrop replay run`, snake_case (candidates as a list or comma-separated)
  drops: var/demo/drops
  candidates: [stub-close, stub-terse]
  proxy: http://127.0.0.1:8787/v1
  out: var/replay/results
  sample: 60
report:   # every option of `tracedrop replay report` but results (it is run.out)
  out: var/replay/report.html
  fail_on: ["similarity<0.5"]
```
The file's fields are derived from the two commands' option classes, so the spec cannot drift from the CLI.
"""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, create_model, field_validator

from tracedrop.replay.report_cli import ReportOptions
from tracedrop.replay.run_options import RunOptions
from tracedrop.schemas.config_errors import Versioned, load_yaml_model

STRICT = ConfigDict(extra="forbid")
REPLAY_SPEC_SCHEMA_VERSION = 1


def _fields(options: type, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    hints = typing.get_type_hints(options)
    fields: dict[str, Any] = {}
    for field in dataclasses.fields(options):
        if field.name in skip:
            continue
        if field.default is not dataclasses.MISSING:
            default = field.default
        elif field.default_factory is not dataclasses.MISSING:
            default = field.default_factory()
        else:
            default = ...
        fields[field.name] = (hints[field.name], default)
    return fields


class _RunBase(BaseModel):
    model_config = STRICT

    @field_validator("candidates", mode="before", check_fields=False)
    @classmethod
    def _join(cls, value: Any) -> Any:
        return ",".join(str(v) for v in value) if isinstance(value, list) else value


RunSpec = create_model("RunSpec", __base__=_RunBase, **_fields(RunOptions))
ReportSpec = create_model("ReportSpec", __config__=STRICT, **_fields(ReportOptions, skip=("results",)))


class ReplaySpecFile(Versioned):
    """The spec file as a whole."""

    model_config = STRICT
    SUPPORTED_VERSIONS = (REPLAY_SPEC_SCHEMA_VERSION,)
    run: RunSpec  # type: ignore[valid-type]
    report: ReportSpec  # type: ignore[valid-type]


@dataclasses.dataclass(frozen=True)
class ReplaySpec:
    """What the replay asset group runs: the run's options and the report's."""

    run: RunOptions
    report: ReportOptions


def load_replay_spec(path: str | Path) -> ReplaySpec:
    """Read and validate a spec file; ConfigError names the file, field and expectation."""
    spec = load_yaml_model(path, ReplaySpecFile)
    run = RunOptions(**spec.run.model_dump())
    return ReplaySpec(run=run, report=ReportOptions(results=run.out, **spec.report.model_dump()))
