"""Machine learning of the SPO agent (Sales Pipeline Optimization, DOMAIN.md section 2).

* :mod:`models.spo.leads`: lead scoring (P(lead becomes a client within the horizon)), its named baseline
  and the bring-your-own-CSV model spec;
* :mod:`models.spo.forecast`: the pipeline forecaster (stage-weighted baseline with Alga PSA's base rates,
  per-owner rates, a learned forecast with time-to-close) and its rolling-origin backtest;
* :mod:`models.spo.history`: what a change-exported table said on each day (as-of joins in pandas);

The stages that run them live in ``jobs/spo/``; nothing here imports ``jobs/`` (settings come in as
parameters).
"""
