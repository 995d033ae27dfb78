"""Moved to :mod:`lakehouse.ml.metrics` (the platform's shared ML utilities); this alias stays until every
agent's models import the new path (``models/spo`` at the time of the move), then goes."""

from lakehouse.ml.metrics import binary_metrics, expected_calibration_error, lift_at  # noqa: F401
