"""Deploy a synthesized stack template onto moto, as close to ``cdk deploy`` as moto allows.

CloudFormation on moto creates what it supports of the template (the buckets, the KMS key, the IAM roles, the
event bus, its rules with their SQS targets, the queues, SNS, the network) and skips the rest with a warning.
Three things stand in for what moto lacks, each the smallest that keeps the template's own values:

- **CDK's bootstrap**: the template's ``BootstrapVersion`` parameter reads the SSM parameter ``cdk bootstrap``
  writes; :func:`deploy` writes it.
- **Two moto gaps in CloudFormation**: a ``Ref`` to an ``AWS::Events::EventBus`` resolves to moto's object
  instead of the bus's name, and a ``KeyPolicy`` given as an object breaks moto's ``DescribeKey``; the
  template is adapted (the bus's ``Name``; the same policy as JSON text), which CloudFormation treats alike.
- **Types moto's CloudFormation skips but its APIs have**: the Glue databases, the Glue security configuration,
  the Glue jobs, the Athena workgroup and its saved queries (the dashboard's views) are created through their
  APIs with the template's own properties (``Ref``/``Fn::GetAtt`` resolved against what the stack created).

Still skipped (moto does not emulate them, or enforces nothing with them): the MWAA environment, CloudWatch
alarms, and the bucket, queue and topic policies.
"""

from __future__ import annotations

import json
from typing import Any

#: The SSM parameter ``cdk bootstrap`` writes (the default qualifier), and a bootstrap version it accepts.
BOOTSTRAP_PARAMETER, BOOTSTRAP_VERSION = "/cdk-bootstrap/hnb659fds/version", "30"
#: Created through their own APIs, in this order (a job names its security configuration).
BY_API = ("AWS::Glue::Database", "AWS::Glue::SecurityConfiguration", "AWS::Glue::Job", "AWS::Athena::WorkGroup",
          "AWS::Athena::NamedQuery")


def adapted(template: dict[str, Any]) -> dict[str, Any]:
    """The template with moto's two CloudFormation gaps worked around (see the module docstring)."""
    buses = {k: v["Properties"]["Name"] for k, v in template["Resources"].items()
             if v["Type"] == "AWS::Events::EventBus"}

    def fix(x: Any) -> Any:
        if isinstance(x, dict):
            if set(x) == {"Ref"} and x["Ref"] in buses:
                return buses[x["Ref"]]
            out = {k: fix(v) for k, v in x.items()}
            if isinstance(out.get("KeyPolicy"), dict):
                out["KeyPolicy"] = json.dumps(out["KeyPolicy"])
            return out
        if isinstance(x, list):
            return [fix(v) for v in x]
        return x

    return fix(template)


class Deployed:
    """A stack deployed on moto: its physical ids, and the template's intrinsics resolved against them."""

    def __init__(self, session, stack_name: str, template: dict[str, Any]):
        self.session, self.stack_name, self.template = session, stack_name, template
        cfn = session.client("cloudformation")
        self.physical = {r["LogicalResourceId"]: r["PhysicalResourceId"]
                         for r in cfn.describe_stack_resources(StackName=stack_name)["StackResources"]
                         if r.get("LogicalResourceId") and r.get("PhysicalResourceId")}

    def resolve(self, x: Any) -> Any:
        res = self.template["Resources"]
        if isinstance(x, dict):
            if set(x) == {"Ref"}:
                return self.physical.get(x["Ref"]) or res[x["Ref"]]["Properties"]["Name"]
            if set(x) == {"Fn::GetAtt"}:
                logical, attr = x["Fn::GetAtt"]
                kind = res[logical]["Type"]
                if (kind, attr) == ("AWS::IAM::Role", "Arn"):
                    return self.session.client("iam").get_role(RoleName=self.physical[logical])["Role"]["Arn"]
                if (kind, attr) == ("AWS::KMS::Key", "Arn"):
                    key = self.session.client("kms").describe_key(KeyId=self.physical[logical])
                    return key["KeyMetadata"]["Arn"]
                raise NotImplementedError(f"Fn::GetAtt {kind}.{attr}")
            if set(x) == {"Fn::Join"}:
                sep, parts = x["Fn::Join"]
                return sep.join(str(self.resolve(p)) for p in parts)
            return {k: self.resolve(v) for k, v in x.items()}
        if isinstance(x, list):
            return [self.resolve(v) for v in x]
        return x

    def create_by_api(self) -> None:
        glue, athena = self.session.client("glue"), self.session.client("athena")
        for kind in BY_API:
            for _logical, res in self.template["Resources"].items():
                if res["Type"] != kind:
                    continue
                p = self.resolve(res["Properties"])
                if kind == "AWS::Glue::Database":
                    glue.create_database(**p)
                elif kind == "AWS::Glue::SecurityConfiguration":
                    enc = p["EncryptionConfiguration"]
                    enc["S3Encryption"] = enc.pop("S3Encryptions")  # CloudFormation's name of the API's list
                    glue.create_security_configuration(**p)
                elif kind == "AWS::Glue::Job":
                    glue.create_job(**p)
                elif kind == "AWS::Athena::NamedQuery":
                    athena.create_named_query(**p)
                else:
                    p.pop("RecursiveDeleteOption", None)  # CloudFormation's own (delete the workgroup's queries)
                    p["Configuration"] = p.pop("WorkGroupConfiguration")
                    athena.create_work_group(**p)

    def outputs(self) -> dict[str, str]:
        (desc,) = self.session.client("cloudformation").describe_stacks(StackName=self.stack_name)["Stacks"]
        return {o["OutputKey"]: o["OutputValue"] for o in desc.get("Outputs", [])}


def deploy(session, stack_name: str, template: dict[str, Any]) -> Deployed:
    """Create the stack on moto (CloudFormation, then the types moto's CloudFormation skips)."""
    import warnings

    session.client("ssm").put_parameter(Name=BOOTSTRAP_PARAMETER, Value=BOOTSTRAP_VERSION, Type="String",
                                        Overwrite=True)
    with warnings.catch_warnings():  # "not supported by moto's CloudFormation implementation", per skipped type
        warnings.simplefilter("ignore")
        session.client("cloudformation").create_stack(
            StackName=stack_name, TemplateBody=json.dumps(adapted(template)),
            Capabilities=["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM"])
    deployed = Deployed(session, stack_name, template)
    deployed.create_by_api()
    return deployed
