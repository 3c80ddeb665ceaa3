"""Partner delivery (issue #12): signed notices of published partitions, and per-checkpoint stats.

Dagster-free; the export's publish step and ``consent apply`` call :mod:`tracedrop.pipelines.delivery.hooks`
after a partition is published, and nothing here can fail or undo a publish.
"""
