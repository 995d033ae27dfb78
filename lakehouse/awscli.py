"""``msp aws``: the names of a deployment, and its settings file from a deployed stack.

``msp aws names [--env dev] [--account ID] [--region R]`` prints every resource name the stack creates and the
runtime uses (:mod:`lakehouse.aws_names`); without ``--account``, the account of your AWS credentials (one STS
call), or a placeholder when there are none.

``msp aws settings --from-stack msp-lakehouse-dev [--out msp.toml]`` reads the stack's outputs
(CloudFormation ``DescribeStacks``) and writes the settings file the jobs and the DAGs need (the same file the
stack itself uploads for them), so nobody types a bucket name by hand. ``MSP_CONFIG=msp.toml msp sql ...``
then queries Athena in the stack's workgroup.

``msp aws views [--dry-run]`` creates (or replaces) every dashboard panel as an Athena view
``<analytics database>.dash_<panel id>`` (:mod:`lakehouse.dashboard.athena`), in the workgroup and databases of
the settings (those of ``msp aws settings``); ``--dry-run`` prints the statements instead. Run it once the first
run has created the tables, and again when a panel changes; the stack holds the same statements as saved queries.

The module is one of the CLI's command modules (:data:`lakehouse.cli.COMMAND_MODULES`);
``python -m lakehouse.awscli names|settings ...`` runs the same commands on their own.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lakehouse import aws_names


def stack_outputs(stack: str, region: str | None = None, client: Any = None) -> dict[str, str]:
    """``{OutputKey: OutputValue}`` of a deployed CloudFormation stack."""
    if client is None:
        import boto3

        client = boto3.client("cloudformation", region_name=region)
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        (desc,) = client.describe_stacks(StackName=stack)["Stacks"]
    except ClientError as exc:
        raise LookupError(f"stack {stack!r}: {exc.response['Error']['Message']}") from None
    except BotoCoreError as exc:  # no credentials, no region, no connection: one line, not a traceback
        raise LookupError(f"stack {stack!r}: {exc}") from None
    return {o["OutputKey"]: o["OutputValue"] for o in desc.get("Outputs", [])}


def settings_from_stack(stack: str, region: str | None = None, client: Any = None) -> str:
    """The settings file (TOML text) of a deployed stack."""
    values = aws_names.settings_from_outputs(stack_outputs(stack, region, client))
    return aws_names.settings_toml(values, header=f"Settings of the deployed stack {stack} "
                                                  f"(msp aws settings --from-stack {stack}).")


#: The account shown when none is given and no credentials are at hand.
PLACEHOLDER_ACCOUNT = "000000000000"


def _account(explicit: str | None) -> str:
    if explicit:
        return explicit
    try:
        import boto3

        return boto3.client("sts").get_caller_identity()["Account"]
    except Exception:  # no credentials: the names with a placeholder account
        return PLACEHOLDER_ACCOUNT


def cmd_names(args, settings) -> int:
    from lakehouse.cli import console

    region = args.region or settings.aws_region
    names = aws_names.AwsNames(args.env, args.project, _account(args.account), region)
    width = max(len(w) for w, _ in names.rows())
    for what, name in names.rows():
        console.print(f"{what:<{width}}  {name}", markup=False, highlight=False)
    return 0


def cmd_settings(args, settings) -> int:
    from lakehouse.cli import UsageError, err

    try:
        text = settings_from_stack(args.from_stack, args.region or None)
    except (LookupError, KeyError) as exc:
        raise UsageError(str(exc).strip('"')) from None
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
        err.print(f"wrote {args.out}: point the platform at it with MSP_CONFIG={args.out}")
    else:
        sys.stdout.write(text)
    return 0


#: Athena's final states of a query, and how many view statements run at once (Athena's quota of active DDL
#: queries is 20 by default; the views are small).
DONE = ("SUCCEEDED", "FAILED", "CANCELLED")
IN_FLIGHT = 5


def run_statements(statements: list[str], *, workgroup: str, database: str, output: str = "", client: Any = None,
                   region: str | None = None, timeout: float = 600.0, poll: float = 0.5,
                   sleep: Callable[[float], None] = time.sleep) -> list[tuple[str, str, str]]:
    """Run statements through Athena in a workgroup (a few at a time); ``(query id, final state, reason)`` of each,
    in order. A statement still running after ``timeout`` seconds is reported as ``TIMEOUT``."""
    if client is None:
        import boto3

        client = boto3.client("athena", region_name=region)
    results: list[tuple[str, str, str] | None] = [None] * len(statements)
    running: dict[int, str] = {}
    waiting = list(range(len(statements)))
    deadline = time.monotonic() + timeout
    while waiting or running:
        while waiting and len(running) < IN_FLIGHT:
            i = waiting.pop(0)
            kwargs: dict[str, Any] = {"QueryString": statements[i], "WorkGroup": workgroup,
                                      "QueryExecutionContext": {"Database": database}}
            if output:
                kwargs["ResultConfiguration"] = {"OutputLocation": output}
            running[i] = client.start_query_execution(**kwargs)["QueryExecutionId"]
        for i, qid in list(running.items()):
            status = client.get_query_execution(QueryExecutionId=qid)["QueryExecution"]["Status"]
            if status["State"] in DONE:
                results[i] = (qid, status["State"], status.get("StateChangeReason", ""))
                del running[i]
        if running:
            if time.monotonic() > deadline:
                for i, qid in running.items():
                    results[i] = (qid, "TIMEOUT", f"still running after {timeout:.0f} s (see the Athena console)")
                running.clear()
                break
            sleep(poll)
    return [r for r in results if r is not None]


def cmd_views(args, settings) -> int:
    from lakehouse.cli import UsageError, console, err
    from lakehouse.dashboard.athena import panel_views

    p = settings.platform
    views = panel_views(p.glue_database_prefix)
    failed = 0
    if args.dry_run:
        for v in views.views:
            sys.stdout.write(f"-- {v.name}: the panel {v.panel_id} ({v.owner}): {v.title}\n{v.sql};\n\n")
    elif p.catalog != "athena":
        raise UsageError("msp aws views runs in a deployment's Athena workgroup: point MSP_CONFIG at its settings "
                         "(msp aws settings --from-stack msp-lakehouse-<env> --out msp-aws.toml); --dry-run prints the "
                         "statements anywhere")
    else:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            done = run_statements([v.sql for v in views.views], workgroup=p.athena_workgroup,
                                  database=views.database, output=p.athena_output, region=p.aws_region)
        except ClientError as exc:
            raise UsageError(f"Athena ({p.athena_workgroup}): {exc.response['Error']['Message']}") from None
        except BotoCoreError as exc:  # no credentials, no region, no connection: one line, not a traceback
            raise UsageError(f"Athena ({p.athena_workgroup}): {exc}") from None
        for v, (qid, state, reason) in zip(views.views, done, strict=True):
            if state == "SUCCEEDED":
                console.print(f"view {v.qualified_name}  (panel {v.panel_id}, {v.owner})", markup=False,
                              highlight=False)
            else:
                failed += 1
                err.print(f"[red]{state.lower()}:[/] {v.qualified_name} (panel {v.panel_id}, {v.owner}): "
                          f"{reason or 'no reason given'} (query {qid})", highlight=False)
        console.print(f"{len(views.views) - failed} of {len(views.views)} views created or replaced in "
                      f"{views.database} (workgroup {p.athena_workgroup})", markup=False, highlight=False)
    for n in views.not_views:
        err.print(f"[yellow]not a view:[/] {n.panel_id} ({n.owner}): {n.reason}", highlight=False)
    return 1 if failed else 0


def register(subparsers) -> None:
    p = subparsers.add_parser("aws", help="AWS deployment: resource names, settings from a deployed stack, the "
                                          "dashboard's Athena views")
    add_commands(p.add_subparsers(dest="aws_command", required=True))


def add_commands(sub) -> None:
    q = sub.add_parser("names", help="every AWS resource name of a deployment (the stack's and the runtime's)")
    q.add_argument("--env", default="dev", help="deployment (infra/environments/<env>.toml), default dev")
    q.add_argument("--project", default=aws_names.PROJECT, help=argparse.SUPPRESS)
    q.add_argument("--account", help="AWS account id (default: your credentials' account)")
    q.add_argument("--region", help="AWS region (default: platform.aws_region)")
    q.set_defaults(func=cmd_names)
    q = sub.add_parser("settings", help="the settings file of a deployed stack (from its outputs)")
    q.add_argument("--from-stack", required=True, metavar="NAME", help="CloudFormation stack, e.g. msp-lakehouse-dev")
    q.add_argument("--region", help="the stack's region (default: the standard AWS chain's)")
    q.add_argument("--out", help="write the file here (default: print it)")
    q.set_defaults(func=cmd_settings)
    q = sub.add_parser("views", help="every dashboard panel as an Athena view, in the deployment's workgroup")
    q.add_argument("--dry-run", action="store_true", help="print the CREATE OR REPLACE VIEW statements, run nothing")
    q.set_defaults(func=cmd_views)


def main(argv: list[str] | None = None) -> int:
    """``python -m lakehouse.awscli names|settings|views ...``: the ``msp aws`` commands on their own."""
    from lakehouse.cli import UsageError, err
    from lakehouse.config import ConfigError, load_settings

    parser = argparse.ArgumentParser(prog="python -m lakehouse.awscli", description=__doc__.splitlines()[0])
    add_commands(parser.add_subparsers(dest="aws_command", required=True, metavar="COMMAND"))
    args = parser.parse_args(argv)
    try:
        return int(args.func(args, load_settings()) or 0)
    except (UsageError, ConfigError) as exc:
        err.print(f"[red]error:[/] {exc}", highlight=False)
        return 2


if __name__ == "__main__":  # pragma: no cover - python -m lakehouse.awscli
    sys.exit(main())
