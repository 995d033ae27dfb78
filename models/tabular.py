"""Moved to :mod:`lakehouse.ml.tabular` (the platform's shared ML utilities); this alias stays until every
agent's models import the new path (``models/spo`` at the time of the move), then goes."""

from lakehouse.ml.tabular import (  # noqa: F401
    DEFAULT_PARAMS,
    MAX_CATEGORIES,
    OTHER,
    THREADS,
    FrameEncoder,
    TabularModel,
    column_kind,
    fit_binary,
    labels,
    permutation_importance,
)
