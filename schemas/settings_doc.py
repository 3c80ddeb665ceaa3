"""The settings table of docs/configuration.md, generated from ``tracedrop.schemas.settings.SETTINGS``.

``python -m tracedrop.schemas.settings_doc`` rewrites it (see schemas/doc_tables.py); a test compares.
"""

from __future__ import annotations

import sys

from tracedrop.schemas.doc_tables import GeneratedTable
from tracedrop.schemas.settings import SETTINGS, Setting


def _cell(setting: Setting) -> list[str]:
    default = "none" if setting.default is None else format(setting.default, "g" if setting.type is float else "")
    field = f"`{setting.resource}.{setting.field}`" if setting.resource else "none (read where used)"
    return [f"`{setting.env}`", str(default), field, setting.read_by, setting.doc.replace("|", "\\|")]


def settings_table() -> str:
    """Every declared setting: variable, default, the resource field that carries it, who reads it, meaning."""
    lines = ["| variable | default | resource field | read by | meaning |", "|---|---|---|---|---|"]
    lines += ["| " + " | ".join(_cell(setting)) + " |" for setting in SETTINGS]
    return "\n".join(lines)


TABLE = GeneratedTable(
    "configuration.md", "settings", "tracedrop.schemas.settings_doc", "schemas/settings.py", settings_table
)

if __name__ == "__main__":
    sys.exit(TABLE.main())
