"""Data contracts and the quality gate (raw → processed | quarantine).

* :mod:`lakehouse.quality.suite`: the rules of a dataset, baseline (from its declaration) plus its suite
  in ``expectations/<name>.json`` (Great Expectations 1.x JSON, severity critical = blocking);
* :mod:`lakehouse.quality.compile`: typing of the raw text and the Spark predicate of every rule;
* :mod:`lakehouse.quality.gx`: Great Expectations on the same frame, checked to agree with the gate;
* :mod:`lakehouse.quality.gate`: the ``quality`` stage;
* :mod:`lakehouse.quality.report`: results as JSON and HTML under ``_meta/quality/``;
* :mod:`lakehouse.quality.cli`: ``msp schemas`` and ``msp quality``.

See docs/quality.md.
"""
