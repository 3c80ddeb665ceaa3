"""The export's partitions: one per UTC day of gateway traffic (``dt``).

``end_offset=1`` makes today's partition available too, for an intraday export (the bundled proxy's
traffic, a check on a day in progress); the daily schedule exports yesterday, and the late-data
sensor re-exports a day whose files change after it was published.
"""

import dagster as dg

from tracedrop.pipelines.export.settings import FIRST_DAY

daily_partitions = dg.DailyPartitionsDefinition(start_date=FIRST_DAY, timezone="UTC", end_offset=1)
