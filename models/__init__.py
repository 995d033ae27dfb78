"""Per-agent machine learning: features, training against a named baseline on a time-based split,
evaluation and scoring. Shared pieces: :mod:`models.tabular` (a binary classifier for any tabular frame)
and :mod:`models.metrics` (the metrics every model reports). Models are stored with
:class:`lakehouse.model_registry.ModelRegistry`.
"""
