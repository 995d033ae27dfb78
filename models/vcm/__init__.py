"""Contract field extraction for the VCM agent: a rules baseline and a learned extractor.

* :mod:`models.vcm.text` — clauses, tokens, number words, the legal vocabulary (lexicon groups);
* :mod:`models.vcm.candidates` — typed detectors (dates, durations, amounts, jurisdictions, payment terms,
  parties) with their spans;
* :mod:`models.vcm.fields` — the fields, their types, the calendar arithmetic, derived fields;
* :mod:`models.vcm.rules` — the baseline (patterns, dateparser, nearest cue words);
* :mod:`models.vcm.learned` — candidate-role classifiers and joint decoding (the stronger extractor);
* :mod:`models.vcm.corpus` — the labelled training corpus made here;
* :mod:`models.vcm.evaluate` — field accuracy against truth.

Imports the platform (the registry, the generator's contract wording) and never ``jobs/``.
"""

from __future__ import annotations

from typing import Any

MODEL_NAME = "vcm-extractor"


def model_registry(lake):
    """The extractor's registry entry (``ml-models/vcm-extractor``)."""
    try:  # the registry may move to lakehouse.ml.registry
        from lakehouse.ml.registry import ModelRegistry  # type: ignore[import-not-found]
    except ImportError:
        from lakehouse.model_registry import ModelRegistry
    return ModelRegistry(lake, MODEL_NAME)


def load_extractor(lake, cfg: Any):
    """(extractor, baseline) for a run: the promoted learned extractor when ``cfg.extractor`` is ``model`` and
    one is promoted, else the rules baseline (then both are the same object)."""
    from models.vcm.learned import LearnedExtractor
    from models.vcm.rules import RulesExtractor

    rules = RulesExtractor(cfg.msp_names, cfg.date_order)
    if cfg.extractor != "model" or lake is None:
        return rules, rules
    reg = model_registry(lake)
    current = reg.current()
    if current is None:
        return rules, rules
    roles = reg.load(current.version)
    return LearnedExtractor(roles, cfg.msp_names, cfg.date_order, version=f"model:{current.version}"), rules
