"""How a command reports bad input and storage failures: one line on stderr, then its exit code."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import typer

from tracedrop.schemas.config_errors import ConfigError
from tracedrop.storage.objectstore import ObjectStoreError

BAD_INPUT = 2  # nothing was done
STORAGE_FAILED = 1  # a re-run finishes it


@dataclass
class Stopped:
    """The exit code a command stopped with, if it did."""

    code: int | None = None


@contextmanager
def one_line_errors(command: str) -> Iterator[Stopped]:
    """Turn a ConfigError into exit 2 and an ObjectStoreError into exit 1, each reported as one line."""
    stopped = Stopped()
    try:
        yield stopped
    except ConfigError as exc:
        typer.echo(f"tracedrop {command}: {exc}", err=True)
        stopped.code = BAD_INPUT
    except ObjectStoreError as exc:
        typer.echo(f"tracedrop {command}: {exc}", err=True)
        stopped.code = STORAGE_FAILED
