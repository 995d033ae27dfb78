"""Data contracts and the quality gate (raw → processed | quarantine), with Great Expectations as its audit.

* :mod:`lakehouse.quality.suite`: the rules of a dataset, baseline (from its declaration) plus its suite
  in ``expectations/<name>.json`` (Great Expectations 1.x JSON, severity critical = blocking);
* :mod:`lakehouse.quality.compile`: typing of the raw text and the Ibis predicate of every rule;
* :mod:`lakehouse.quality.gate`: the ``quality`` stage (on DuckDB or Spark, through Ibis);
* :mod:`lakehouse.quality.gx`: the lake's GX project (file Data Context, suites, validation definitions,
  Checkpoints, Data Docs);
* :mod:`lakehouse.quality.audit`: the audit step of write-audit-publish (a dataset's Checkpoint on the
  staged batch, called by ``ctx.write``);
* :mod:`lakehouse.quality.report`: results as JSON under ``_meta/quality/``;
* :mod:`lakehouse.quality.cli`: ``msp schemas`` and ``msp quality``.

See docs/quality.md.
"""
