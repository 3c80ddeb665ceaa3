"""``tracedrop replay run`` options checked and resolved before anything is read or written.

Every problem is an :class:`InputError` whose one-line message names the option, the value and
the fix.  API keys are read from environment variables named here; their values are never shown.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from urllib.parse import urlparse

import yaml

from tracedrop.replay.plan import AA, RESERVED_ARMS, Arm, Endpoint
from tracedrop.schemas.settings import secret

ENV_SUFFIX = re.compile(r"@([A-Za-z_][A-Za-z0-9_]*)$")


class InputError(ValueError):
    """Bad user input: one line saying what, where and how to fix it."""


@dataclass(frozen=True)
class Price:
    input_per_million: float
    output_per_million: float


@dataclass
class RunOptions:
    """The command's options as given."""

    drops: str
    candidates: str
    out: str
    partner: str | None = None
    experiment: str | None = None
    variant: str | None = None
    date_from: str | None = None
    date_to: str | None = None
    proxy: str | None = None
    api_key_env: str | None = None
    sample: int | None = None
    seed: int = 0
    samples: int = 1
    aa: bool = False
    aa_routes: list[str] = field(default_factory=list)
    stream: bool | None = None
    concurrency: int = 8
    rate: float | None = None
    max_retries: int = 5
    timeout: float = 120.0
    retry_errors: bool = False
    dry_run: bool = False
    price_table: str | None = None


def check_url(option: str, url: str) -> str:
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise InputError(f"{option} {url!r}: not an http(s) base URL; give one like http://127.0.0.1:8787/v1")
    return url.rstrip("/")


def check_date(option: str, value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value).isoformat()
    except ValueError:
        raise InputError(f"{option} {value!r}: not a date; use YYYY-MM-DD") from None


def check_numbers(options: RunOptions) -> None:
    checks = (
        ("--samples", options.samples, options.samples >= 1, "give 1 or more"),
        ("--concurrency", options.concurrency, options.concurrency >= 1, "give 1 or more"),
        ("--max-retries", options.max_retries, options.max_retries >= 0, "give 0 or more"),
        ("--timeout", options.timeout, options.timeout > 0, "give seconds above 0"),
        ("--sample", options.sample, options.sample is None or options.sample >= 1, "give 1 or more rows"),
        ("--rate", options.rate, options.rate is None or options.rate > 0, "give requests/s above 0"),
    )
    for option, value, valid, fix in checks:
        if not valid:
            raise InputError(f"{option} {value}: out of range; {fix}")


def _key_env(option: str, name: str | None, dry_run: bool) -> str | None:
    if name is not None and not dry_run and not secret(name):
        raise InputError(f"{option}: environment variable {name} is not set; export it with the API key")
    return name


def parse_candidates(options: RunOptions, proxy: str | None) -> tuple[Arm, ...]:
    """The candidate arms: ``name`` (routed by --proxy) or ``name=base_url[@KEY_ENV]`` (direct)."""
    arms: list[Arm] = []
    for spec in (part.strip() for part in options.candidates.split(",")):
        if not spec:
            raise InputError(f"--candidates {options.candidates!r}: an empty name; separate names with single commas")
        name, sep, target = spec.partition("=")
        name = name.strip()
        if name in RESERVED_ARMS or any(arm.name == name for arm in arms):
            raise InputError(f"--candidates: arm name {name!r} is reserved or repeated; give each candidate once")
        if sep:
            match = ENV_SUFFIX.search(target)
            env = match.group(1) if match else options.api_key_env
            url = check_url(f"--candidates {name}=", target[: match.start()] if match else target)
            endpoint = Endpoint("direct", url, _key_env(f"--candidates {name}", env, options.dry_run))
        elif proxy is not None:
            endpoint = Endpoint("proxy", proxy, _key_env("--api-key-env", options.api_key_env, options.dry_run))
        else:
            raise InputError(f"--candidates {name}: no endpoint; pass --proxy URL or give it as {name}=BASE_URL")
        arms.append(Arm(name, name, endpoint))
    return tuple(arms)


def aa_endpoints(options: RunOptions, proxy: str | None, checkpoints: set[str]) -> dict[str, Endpoint]:
    """The endpoint of each checkpoint for the ``aa`` arm: ``--aa-route`` first, else the proxy."""
    if not options.aa:
        return {}
    routes: dict[str, Endpoint] = {}
    for spec in options.aa_routes:
        checkpoint, sep, target = spec.partition("=")
        if not sep or not checkpoint:
            raise InputError(f"--aa-route {spec!r}: expected CHECKPOINT=BASE_URL[@KEY_ENV]")
        match = ENV_SUFFIX.search(target)
        env = match.group(1) if match else options.api_key_env
        url = check_url(f"--aa-route {checkpoint}=", target[: match.start()] if match else target)
        routes[checkpoint] = Endpoint("direct", url, _key_env(f"--aa-route {checkpoint}", env, options.dry_run))
    if proxy is not None:
        fallback = Endpoint("proxy", proxy, _key_env("--api-key-env", options.api_key_env, options.dry_run))
        return {checkpoint: routes.get(checkpoint, fallback) for checkpoint in checkpoints}
    unrouted = sorted(checkpoints - routes.keys())
    if unrouted:
        raise InputError(
            f"--aa: no endpoint for checkpoint(s) {', '.join(unrouted)}; pass --proxy URL (with a plain route per "
            "checkpoint) or --aa-route CHECKPOINT=BASE_URL"
        )
    return {checkpoint: routes[checkpoint] for checkpoint in checkpoints}


def aa_arm() -> Arm:
    return Arm(AA, None, None)


def load_price_table(path: str | None) -> dict[str, Price]:
    """Model -> USD per 1M input and output tokens, from YAML ``{model: {input: 3.0, output: 15.0}}``."""
    if path is None:
        return {}
    try:
        data = yaml.safe_load(Path(path).read_text())
    except OSError as exc:
        raise InputError(f"--price-table {path}: cannot read it ({exc.strerror}); give an existing YAML file") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise InputError(f"--price-table {path}{where}: not valid YAML; fix the syntax") from None
    if not isinstance(data, dict):
        raise InputError(
            f"--price-table {path}: expected a mapping of model to {{input: N, output: N}} USD per 1M tokens"
        )
    prices = {}
    for model, entry in data.items():
        values = entry if isinstance(entry, dict) else {}
        given = (values.get("input"), values.get("output"))
        if not all(isinstance(v, int | float) and not isinstance(v, bool) and v >= 0 for v in given):
            raise InputError(
                f"--price-table {path}: model {model!r} needs numeric input and output prices (USD per 1M tokens) >= 0"
            )
        prices[str(model)] = Price(float(given[0]), float(given[1]))  # type: ignore[arg-type]
    return prices


def check_out(out: str) -> None:
    path = Path(out)
    if "://" not in out and path.exists() and not path.is_dir():
        raise InputError(f"--out {out}: exists and is not a directory; give a directory for the results")


def check_filters(options: RunOptions) -> tuple[str | None, str | None]:
    start, end = check_date("--from", options.date_from), check_date("--to", options.date_to)
    if start and end and start > end:
        raise InputError(f"--from {start} is after --to {end}; swap them")
    return start, end
