"""The CPI agent's models: churn prediction from monthly client snapshots (:mod:`models.cpi.features`), a
time-based split with a named rules baseline and a calibrated gradient-boosted model (:mod:`models.cpi.train`),
and the :class:`lakehouse.ml.ModelSpec` that evaluates the same model on any frame (:mod:`models.cpi.churn`).
The stages that run them live in ``jobs/cpi/churn.py``; the metrics and the method are in docs/cpi.md.
This package imports the platform and ``schemas`` only: its thresholds arrive as parameters."""
