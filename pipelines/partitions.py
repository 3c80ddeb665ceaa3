"""The export's partitions: one per UTC day of gateway traffic (``dt``)."""

from __future__ import annotations

import dagster as dg

FIRST_DAY = "2026-10-01"

daily_partitions = dg.DailyPartitionsDefinition(start_date=FIRST_DAY, timezone="UTC")
