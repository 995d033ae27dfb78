"""``msp aws``: the names of a deployment, and its settings file from a deployed stack.

``msp aws names [--env dev] [--account ID] [--region R]`` prints every resource name the stack creates and the
runtime uses (:mod:`lakehouse.aws_names`); without ``--account``, the account of your AWS credentials (one STS
call), or a placeholder when there are none.

``msp aws settings --from-stack msp-lakehouse-dev [--out msp.toml]`` reads the stack's outputs
(CloudFormation ``DescribeStacks``) and writes the settings file the jobs and the DAGs need (the same file the
stack itself uploads for them), so nobody types a bucket name by hand. ``MSP_CONFIG=msp.toml msp sql ...``
then queries Athena in the stack's workgroup.

The module is one of the CLI's command modules (:data:`lakehouse.cli.COMMAND_MODULES`);
``python -m lakehouse.awscli names|settings ...`` runs the same commands on their own.
"""

from __future__ import annotations

import argparse
import sys
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


def register(subparsers) -> None:
    p = subparsers.add_parser("aws", help="AWS deployment: resource names, settings from a deployed stack")
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


def main(argv: list[str] | None = None) -> int:
    """``python -m lakehouse.awscli names|settings ...``: the ``msp aws`` commands on their own."""
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
