"""Churn prediction for the CPI agent: monthly client snapshots (:mod:`models.churn.features`), a time-based
split with a named rules baseline and a calibrated gradient-boosted model (:mod:`models.churn.train`).
The stages that run them live in :mod:`jobs.cpi.churn`; the metrics and the method are in docs/cpi.md."""
