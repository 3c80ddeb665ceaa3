"""Loading YAML configuration into pydantic models with errors that name file, key path and expectation."""

from __future__ import annotations

import difflib
import types
import typing
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

ModelT = TypeVar("ModelT", bound=BaseModel)


class ConfigError(ValueError):
    """A configuration file that cannot be used; the message names the file and every bad field."""


class Versioned(BaseModel):
    """The top level of a configuration file: its ``schema_version`` (missing: 1, as files written before
    versions were) and the versions this tracedrop reads, checked before any other key."""

    SUPPORTED_VERSIONS: ClassVar[tuple[int, ...]] = (1,)
    schema_version: int = 1


def check_version(data: object, model: type[BaseModel], source: str) -> None:
    """ConfigError naming the file and the versions read when ``data``'s ``schema_version`` is not one of them."""
    if not (issubclass(model, Versioned) and isinstance(data, dict)):
        return
    version = data.get("schema_version", 1)
    if type(version) is not int or version not in model.SUPPORTED_VERSIONS:
        supported = ", ".join(str(v) for v in model.SUPPORTED_VERSIONS)
        raise ConfigError(
            f"{source}: schema_version {version!r} is not supported (this tracedrop reads version {supported}); "
            "use a tracedrop that knows it, or write the file in a supported version"
        )


def key_path(loc: tuple[int | str, ...]) -> str:
    """``('experiments', 0, 'variants')`` → ``experiments[0].variants``; the empty path is the top level."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _nested_model(annotation: Any) -> type[BaseModel] | None:
    """The model a field holds, through ``X | None`` and ``tuple[X, ...]``; None for plain values."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType, tuple, list):
        for argument in typing.get_args(annotation):
            found = _nested_model(argument)
            if found is not None:
                return found
    return None


def _model_at(model: type[BaseModel], loc: tuple[int | str, ...]) -> type[BaseModel] | None:
    """The model whose keys are found at ``loc`` (list indexes skipped), or None if it holds no model."""
    current: type[BaseModel] | None = model
    for part in loc:
        if isinstance(part, int):
            continue
        field = current.model_fields.get(part) if current else None
        current = _nested_model(field.annotation) if field else None
    return current


def _unknown_key(model: type[BaseModel], loc: tuple[int | str, ...]) -> str:
    owner = _model_at(model, loc[:-1])
    known = list(owner.model_fields) if owner else []
    close = difflib.get_close_matches(str(loc[-1]), known, n=1, cutoff=0.6)
    hint = f"did you mean {close[0]!r}?" if close else f"known keys: {', '.join(known)}"
    return f"unknown key; {hint}"


def _explain(model: type[BaseModel], problem: Any) -> str:
    """What is wrong, with the offending value if it is a scalar (never an unknown key's: it may be a secret)."""
    kind, message, ctx = problem["type"], problem["msg"], problem.get("ctx") or {}
    if kind == "extra_forbidden":
        return _unknown_key(model, problem["loc"])
    if kind == "missing":
        return message
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        bound = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<", "less_than_equal": "<="}[kind]
        message = f"must be {bound} {next(iter(ctx.values()))}"
    elif kind == "too_short":
        return f"needs at least {ctx['min_length']} item(s), has {ctx['actual_length']}"
    elif kind in ("value_error", "assertion_error"):
        message = str(ctx.get("error", message))
    got = problem.get("input")
    if isinstance(got, dict | list):
        return message
    shown = repr(got)
    return f"{message} (got {shown[:77] + '...' if len(shown) > 80 else shown})"


def describe_validation_error(source: str, error: ValidationError, model: type[BaseModel]) -> str:
    """One line per problem: ``file: key.path: what was expected (got value)``.

    A list whose items failed is reported by pydantic too (as too short); only the items' own problems are kept.
    """
    problems = error.errors()
    paths = {p["loc"] for p in problems}
    inner = [p for p in problems if not any(len(q) > len(p["loc"]) and q[: len(p["loc"])] == p["loc"] for q in paths)]
    return "\n".join(f"{source}: {key_path(p['loc'])}: {_explain(model, p)}" for p in inner)


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
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{path}: not valid YAML{where}: {exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if data is None:
        data = {}
    return validate_model(data, model, str(path))


def validate_model(data: object, model: type[ModelT], source: str) -> ModelT:
    """Validate already-parsed data as ``model``, naming ``source`` in any error (an unknown version first)."""
    check_version(data, model, source)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(source, exc, model)) from None
