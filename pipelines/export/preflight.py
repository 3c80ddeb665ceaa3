"""Everything an export needs, checked before any step runs: every problem at once, one line each.

Used by ``tracedrop export`` (exit 2, nothing written) and by the first asset of the Dagster job (the
run fails with these lines as its message). A missing salt is a problem only when no selected partner
could be exported at all; otherwise that partner fails on its own and the others publish.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

from tracedrop.pipelines.export.consent import ConsentFileError, load_opt_outs
from tracedrop.pipelines.export.settings import FIRST_DAY, ExportSettings
from tracedrop.pipelines.landing import landing_days, landing_files
from tracedrop.schemas.config_errors import ConfigError
from tracedrop.schemas.landing import USAGE
from tracedrop.schemas.partners import Partner, load_partner_registry
from tracedrop.schemas.settings import secret
from tracedrop.storage.objectstore import ObjectStoreError, open_store


def last_day() -> str:
    """The latest day that can be exported: today (UTC), for an intraday export."""
    return datetime.now(UTC).date().isoformat()


def date_problems(dt: str) -> list[str]:
    try:
        day = datetime.strptime(dt, "%Y-%m-%d").date()
    except ValueError:
        return [f"--date {dt!r}: date must be YYYY-MM-DD, e.g. {last_day()}"]
    if not date.fromisoformat(FIRST_DAY) <= day <= date.fromisoformat(last_day()):
        return [f"--date {dt}: outside the export's days, {FIRST_DAY} to {last_day()} (today, UTC)"]
    return []


def _partner_problems(settings: ExportSettings) -> tuple[list[str], list[Partner]]:
    try:
        registry = load_partner_registry(settings.partners_path)
    except ConfigError as exc:
        return str(exc).splitlines(), []
    if settings.only_partner:
        known = {p.id: p for p in registry.partners}
        partner = known.get(settings.only_partner)
        if partner is None:
            names = ", ".join(known)
            return [f"--partner: unknown partner {settings.only_partner!r} (the registry has: {names})"], []
        if not partner.eval_program:
            return [
                f"--partner {partner.id}: eval_program is false in {settings.partners_path}; nothing may go to it"
            ], []
        selected = [partner]
    else:
        selected = [p for p in registry.partners if p.eval_program]
        if not selected:
            return [f"{settings.partners_path}: no partner has eval_program: true, so there is nothing to export"], []
    problems = []
    try:
        registry.check_distinct_salts()
    except ConfigError as exc:
        problems.append(str(exc))
    unset = [p for p in selected if not secret(p.subject_salt_env)]
    if len(unset) == len(selected):
        problems += [
            f"partner {p.id!r}: environment variable {p.subject_salt_env} is not set; export it with the partner's "
            "pseudonymisation secret"
            for p in unset
        ]
    return problems, selected


def _landing_problems(settings: ExportSettings, dt: str) -> list[str]:
    try:
        store = open_store(settings.landing_url)
        if landing_files(store, USAGE, dt):
            load_opt_outs(store)
            return []
        days = landing_days(store, USAGE)
    except ConsentFileError as exc:
        return [str(exc)]
    except (ObjectStoreError, ValueError, OSError) as exc:
        return [f"--landing {settings.landing_url}: cannot be read: {exc}"]
    where = f"{store.url}/{USAGE.location}/dt={dt}"
    if not days:
        return [f"--landing {settings.landing_url}: no usage files at all (`tracedrop synth --out DIR` writes one)"]
    return [f"{where}: no usage files for this day (the landing zone has {days[0]} to {days[-1]})"]


def export_problems(settings: ExportSettings, dt: str) -> list[str]:
    """Every reason the export of ``dt`` cannot start, one line each (empty when it can)."""
    problems = date_problems(dt) + settings.problems()
    partner_problems, _ = _partner_problems(settings)
    problems += partner_problems
    if not date_problems(dt):
        problems += _landing_problems(settings, dt)
    return problems
