"""``msp model``: the agents' declared models on the command line.

    msp model list                                     # every declared model, by agent
    msp model evaluate --csv FILE --label COL          # a model and its baseline on your own data
                       [--time-col COL] [--model NAME] [--ignore COL ...] [--out FILE]

The models come from the agents' declarations (``Agent.models``): the platform names none.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from lakehouse.config import Settings


def resolve(name: str | None):
    """(agent, model declaration) for ``--model`` (default: the only declared model)."""
    from lakehouse.agents import registry
    from lakehouse.ml.evaluate import EvaluationError

    models = registry().models()
    if not models:
        raise EvaluationError("no agent declares a model")
    if name is None:
        if len(models) > 1:
            raise EvaluationError(f"several models are declared; pick one with --model: {', '.join(sorted(models))}")
        name = next(iter(models))
    if name not in models:
        raise EvaluationError(f"unknown model {name!r}; declared: {', '.join(sorted(models))}")
    return models[name]


def cmd_list(args, settings: Settings) -> int:
    from lakehouse.agents import registry
    from lakehouse.cli import console

    for name, (agent, model) in sorted(registry().models().items()):
        console.print(f"{name:<20} {agent.name:<8} {model.title}")
    return 0


def cmd_evaluate(args, settings: Settings) -> int:
    from lakehouse.cli import console, err
    from lakehouse.ml.evaluate import EvaluationError, evaluate_frame, read_csv

    try:
        agent, model = resolve(args.model)
        spec = model.load()
        params = spec.parameters(settings.model(agent.name) if agent.settings is not None else None)
        frame = read_csv(args.csv)
        result = evaluate_frame(spec, frame, args.label, args.time_col, params, folds=args.folds,
                                test_share=args.test_share, embargo_days=args.embargo_days,
                                ignore=args.ignore or ())
    except EvaluationError as exc:
        err.print(f"[red]{exc}[/]", highlight=False)
        return 2
    out = Path(args.out or f"{Path(args.csv).stem}-{model.name}-evaluation.json")
    out.write_text(result.to_json() + "\n", encoding="utf-8")
    for line in result.lines():
        console.print(line, highlight=False, markup=False, soft_wrap=True)
    console.print(f"written to {out}", highlight=False)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("model", help="the agents' models: list them, evaluate one on your own CSV")
    cmds = p.add_subparsers(dest="model_command", required=True, metavar="MODEL_COMMAND")
    q = cmds.add_parser("list", help="every declared model")
    q.set_defaults(func=cmd_list)
    q = cmds.add_parser("evaluate", help="a model and its named baseline on a CSV of your own (time split when "
                                         "--time-col is given, else stratified 5-fold cross-validation)")
    q.add_argument("--csv", required=True, help="the CSV file: one row per example, a header row")
    q.add_argument("--label", required=True, help="the 0/1 (yes/no, true/false) outcome column")
    q.add_argument("--time-col", help="a date (or number) column: train on the earlier rows, test on the latest")
    q.add_argument("--model", help="a declared model (`msp model list`; default: the only one)")
    q.add_argument("--out", help="where to write the metrics as JSON (default: ./<csv name>-<model>-evaluation.json)")
    q.add_argument("--ignore", nargs="+", metavar="COL", help="columns that are not features (ids, later outcomes)")
    q.add_argument("--folds", type=int, default=5, help="cross-validation folds without --time-col (default 5)")
    q.add_argument("--test-share", type=float, help="share of the latest times held out (default: the model's)")
    q.add_argument("--embargo-days", type=int,
                   help="days between the last training time and the first test time (default: the model's "
                        "label horizon)")
    q.set_defaults(func=cmd_evaluate)
