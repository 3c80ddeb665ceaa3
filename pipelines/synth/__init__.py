"""``tracedrop synth``: a realistic, deterministic synthetic landing zone with its ground truth.

Entry points: :func:`tracedrop.pipelines.synth.generate.generate` (Python API) and
:func:`tracedrop.pipelines.synth.cli.synth_command` (the command).
"""
