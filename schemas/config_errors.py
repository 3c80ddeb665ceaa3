"""Loading YAML configuration into pydantic models with errors that name file, field and expectation."""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ValidationError

ModelT = TypeVar("ModelT", bound=BaseModel)


class ConfigError(ValueError):
    """A configuration file that cannot be used; the message names the file and every bad field."""


def _location(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def describe_validation_error(source: str, error: ValidationError) -> str:
    """One line per problem: ``file: field.path: what was expected (got: value)``."""
    lines = []
    for problem in error.errors():
        got = problem.get("input")
        shown = repr(got)
        if len(shown) > 80:
            shown = shown[:77] + "..."
        lines.append(f"{source}: {_location(problem['loc'])}: {problem['msg']} (got: {shown})")
    return "\n".join(lines)


def load_yaml_model(path: str | Path, model: type[ModelT]) -> ModelT:
    """Read ``path`` as YAML and validate it as ``model``; raise ConfigError with a readable message."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if data is None:
        data = {}
    return validate_model(data, model, str(path))


def validate_model(data: object, model: type[ModelT], source: str) -> ModelT:
    """Validate already-parsed data as ``model``, naming ``source`` in any error."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(source, exc)) from None
