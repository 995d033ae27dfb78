"""Stage ``vcm.extractor_train`` (weekly): train the learned extractor, check it, store it, promote it.

The corpus (:mod:`models.vcm.corpus`, ``vcm.train_documents`` documents) is split three ways: training
documents in the wording styles not held out; a validation set in those styles; and the held-out styles
(``vcm.train_holdout_styles``, with trap clauses worded differently from training's). The model is fitted on
the training documents and measured, with the rules baseline, on the other two. The stored model is then
refitted on every style. It is promoted when its validation field accuracy beats the current version's on
the same documents (the primary metric), so a retrain never replaces a better extractor.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from lakehouse.context import RunContext


def overall(results) -> float:
    pairs = [ok for _, _, marks in results for ok in marks.values()]
    return sum(pairs) / len(pairs) if pairs else float("nan")


def train_and_measure(cfg: Any) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    """(fitted role model on all styles, metrics, accuracy tables)."""
    from models.vcm.corpus import _MSPS, corpus
    from models.vcm.evaluate import accuracy_table
    from models.vcm.learned import evaluate, train
    from models.vcm.rules import RulesExtractor

    msp = tuple(dict.fromkeys((*cfg.msp_names, *_MSPS)))
    held = tuple(s for s in cfg.train_holdout_styles if 0 <= s <= 4)
    seen = tuple(s for s in range(5) if s not in held) or (0, 1, 2, 3, 4)
    n = cfg.train_documents
    train_docs = corpus(n // 2, cfg.train_seed, seen, cfg.train_noise_share)
    valid_docs = corpus(n // 4, cfg.train_seed + 1, seen, cfg.train_noise_share)
    held_docs = corpus(n // 4, cfg.train_seed + 2, held, cfg.train_noise_share, distractors="test") if held else []
    model = train(train_docs, msp, cfg.date_order)
    rules = RulesExtractor(msp, cfg.date_order)
    results = {"valid": evaluate(model, valid_docs, "model") + evaluate(rules, valid_docs, "rules"),
               "held_out": evaluate(model, held_docs, "model") + evaluate(rules, held_docs, "rules")}
    metrics = {
        "field_accuracy": overall([r for r in results["valid"] if r[1] == "model"]),
        "held_out_field_accuracy": overall([r for r in results["held_out"] if r[1] == "model"]),
        "baseline": {"field_accuracy": overall([r for r in results["valid"] if r[1] == "rules"]),
                     "held_out_field_accuracy": overall([r for r in results["held_out"] if r[1] == "rules"])},
    }
    final = train(train_docs + held_docs, msp, cfg.date_order)
    tables = {k: accuracy_table(v) for k, v in results.items()}
    return final.roles, metrics, {"tables": tables, "styles_seen": list(seen), "styles_held_out": list(held),
                                  "documents": {"train": len(train_docs), "valid": len(valid_docs),
                                                "held_out": len(held_docs)},
                                  "valid_docs": valid_docs}


def run(ctx: RunContext) -> None:
    from lakehouse.model_registry import make_version
    from models.vcm import model_registry
    from models.vcm.learned import LearnedExtractor, evaluate

    cfg = ctx.config
    roles, metrics, info = train_and_measure(cfg)
    valid_docs = info.pop("valid_docs")
    params = {"train_documents": cfg.train_documents, "seed": cfg.train_seed, "noise": cfg.train_noise_share,
              "holdout_styles": list(cfg.train_holdout_styles), "date_order": cfg.date_order, "words": roles.words}
    reg = model_registry(ctx.lake)
    version = make_version(ctx.end, params, sorted(roles.models))
    reg.save(roles, version=version, metrics=metrics, primary_metric="field_accuracy", params=params,
             features=sorted({n for m in roles.models.values() for n in m[0].feature_names_}),
             extra=info, card={
                 "intended_use": "Reads vendor contracts: which date, duration, amount and jurisdiction of a "
                                 "contract fills which field (models/vcm/learned.py).",
                 "data": f"Generated labelled contracts (models/vcm/corpus.py): {info['documents']}; wording "
                         f"styles {info['styles_held_out']} held out of the measured model.",
                 "baseline": "The rules baseline (models/vcm/rules.py) on the same documents.",
                 "limitations": "Trained on five wording styles plus trap clauses; parties, renewal and payment "
                                "terms come from rules. Field accuracy on the held-out styles is the estimate for "
                                "unseen wording."})
    cur = reg.current()
    champion = None
    if cur is not None and cur.version != version:
        try:
            old = LearnedExtractor(reg.load(cur.version), cfg.msp_names, cfg.date_order)
            from jobs.vcm.train import overall as _overall

            champion = _overall(evaluate(old, valid_docs, "model"))
        except Exception as exc:
            ctx.warn(f"vcm-extractor {cur.version} could not be re-scored ({exc}); comparing stored scores")
    decision = reg.promote_if_better(version, champion_score=champion)
    ctx.count("ml-models/vcm-extractor").notes.append(
        f"{version}: field accuracy {metrics['field_accuracy']:.3f} "
        f"(rules {metrics['baseline']['field_accuracy']:.3f}), "
        f"held-out styles {metrics['held_out_field_accuracy']:.3f} (rules "
        f"{metrics['baseline']['held_out_field_accuracy']:.3f}); {'promoted' if decision.promoted else 'kept'}: "
        f"{decision.reason}")
