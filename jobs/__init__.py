"""Agent jobs: one package per agent, one module per stage.

Every module under ``jobs/`` is imported by the stage registry (:func:`lakehouse.stages.discover`), so a
stage registers itself with ``@stage(...)`` and the runner, the CLI and the Airflow DAGs pick it up. A job
module keeps a pure ``transform(...) -> DataFrame`` (no I/O, no session building: tests call it on tiny
frames) apart from the thin stage function that reads, transforms and writes. Helpers every agent needs
(latest state of change exports, as-of reads, calendar months) live in :mod:`jobs.common`.
"""
