"""Per-agent machine learning (``models/<agent>/``): features, training against a named baseline on a
time-based split, evaluation and scoring. The shared pieces are the platform's :mod:`lakehouse.ml` (a binary
classifier for any tabular frame, the metrics, baselines, the model registry, ``msp model evaluate``). An
agent's models import the platform and ``schemas``, never ``jobs/``.
"""
