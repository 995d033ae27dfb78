"""IAM on the template, by policy evaluation (moto does not enforce IAM, so this is where least privilege is
checked): each Glue job's role may write exactly the tables its unit's stages declare, read what they read,
touch the catalog entries of those tables, put events only when it is the dispatcher, call only its own
Bedrock models; MWAA's role may start the deployment's Glue jobs and nothing more. The evaluator is
``tests/infra/iam.py``; ``tests/aws/test_stack_on_moto.py`` checks what stage runs really wrote against the
same statements."""

from __future__ import annotations

import pytest

import schemas
from infra import config
from lakehouse import aws_names
from tests.infra.conftest import ACCOUNT, REGION, needs_node
from tests.infra.iam import allowed, role_statements

pytestmark = [needs_node, pytest.mark.xdist_group("infra-template")]
NAMES = aws_names.AwsNames("dev", account=ACCOUNT, region=REGION)
S3 = f"arn:aws:s3:::{NAMES.lake_bucket}"
GLUE = f"arn:aws:glue:{REGION}:{ACCOUNT}"
BUS = f"arn:aws:events:{REGION}:{ACCOUNT}:event-bus/{NAMES.event_bus}"


def accesses():
    settings = config.load("dev").runtime_settings(NAMES)
    return [(u, aws_names.access(u, None, settings)) for u in aws_names.units()]


def data_file(ds) -> str:
    return f"{S3}/{aws_names.table_prefix(ds.qualified_name)}data/dt=2024-01-01/00000-0-x.parquet"


def glue_table(ds) -> str:
    db, name = aws_names.table_glue_name(NAMES, ds.qualified_name)
    return f"{GLUE}:table/{db}/{name}"


def test_each_role_writes_exactly_its_units_tables_and_reads_what_it_reads(template):
    for unit, acc in accesses():
        st = role_statements(template, NAMES.role(unit.name))
        for name, ds in schemas.catalog().items():
            writes = acc.all_tables or name in acc.writes
            reads = writes or name in acc.reads
            where = (unit.name, name)
            assert allowed(st, "s3:PutObject", data_file(ds)) == writes, where
            assert allowed(st, "s3:GetObject", data_file(ds)) == reads, where
            assert allowed(st, "glue:UpdateTable", glue_table(ds)) == writes, where
            assert allowed(st, "glue:GetTable", glue_table(ds)) == reads, where
            # only maintenance expires files; commits never delete
            assert allowed(st, "s3:DeleteObject", data_file(ds)) == acc.all_tables, where
        # the catalog's own tables are not a role's to drop
        assert not any(allowed(st, a, f"{GLUE}:table/{NAMES.glue_database('processed')}/x")
                       for a in ("glue:DeleteTable", "glue:DeleteDatabase")), unit.name


def test_landing_is_read_by_ingestion_alone_and_written_by_no_job(template):
    for unit, acc in accesses():
        st = role_statements(template, NAMES.role(unit.name))
        key = f"arn:aws:s3:::{NAMES.landing_bucket}/{aws_names.LANDING_PREFIX}/psa/tickets/tickets_2024-01-01.csv"
        assert allowed(st, "s3:GetObject", key) == acc.landing, unit.name
        assert not allowed(st, "s3:PutObject", key), unit.name
        assert not allowed(st, "s3:DeleteObject", key), unit.name
        # the job reads its script, wheel and settings, and writes none of them
        artifact = f"arn:aws:s3:::{NAMES.artifacts_bucket}/{aws_names.GLUE_PREFIX}/{aws_names.SETTINGS_FILE}"
        assert allowed(st, "s3:GetObject", artifact) and not allowed(st, "s3:PutObject", artifact), unit.name


def test_only_the_dispatcher_puts_events_and_each_under_a_declared_agents_source(template):
    from lakehouse.agents import registry

    sources = {aws_names.event_source(t.agent) for t in registry().events.values()}
    dispatchers = []
    for unit, _acc in accesses():
        st = role_statements(template, NAMES.role(unit.name))
        may = {s for s in sources if allowed(st, "events:PutEvents", BUS, {"events:source": s})}
        assert not allowed(st, "events:PutEvents", BUS, {"events:source": "aws.glue"}), unit.name
        assert not allowed(st, "events:PutEvents", BUS), unit.name  # never without the Source condition
        if may:
            assert may == sources, unit.name
            dispatchers.append(unit.name)
    assert dispatchers == [aws_names.unit_of("events.dispatch")]


def test_a_role_may_invoke_only_the_bedrock_models_its_agent_is_configured_with(template):
    from infra.policies import bedrock_arns

    configured = {m for _u, acc in accesses() for m in acc.bedrock_models}
    other = "arn:aws:bedrock:us-east-1::foundation-model/some.other-model-v1:0"
    for unit, acc in accesses():
        st = role_statements(template, NAMES.role(unit.name))
        assert not allowed(st, "bedrock:InvokeModel", other), unit.name
        for model in configured:
            for arn in bedrock_arns(NAMES, model):
                assert allowed(st, "bedrock:InvokeModel", arn) == (model in acc.bedrock_models), (unit.name, model)


def test_no_job_role_can_pass_roles_or_administer_anything(template):
    for unit, _acc in accesses():
        st = role_statements(template, NAMES.role(unit.name))
        for action in ("iam:PassRole", "iam:CreateRole", "s3:DeleteBucket", "s3:PutBucketPolicy",
                       "kms:ScheduleKeyDeletion", "glue:StartJobRun", "glue:CreateJob", "events:PutRule",
                       "sqs:SendMessage"):
            assert not allowed(st, action, "*") and not any(
                allowed(st, action, r) for r in (S3, f"{GLUE}:job/{NAMES.job(unit.name)}", BUS)), (unit.name, action)


def test_mwaa_may_start_and_watch_the_deployments_jobs_and_read_their_results_only(template):
    st = role_statements(template, NAMES.mwaa_role)
    for unit in aws_names.units():
        job = f"{GLUE}:job/{NAMES.job(unit.name)}"
        assert allowed(st, "glue:StartJobRun", job) and allowed(st, "glue:GetJobRun", job), unit.name
        assert not allowed(st, "glue:UpdateJob", job) and not allowed(st, "glue:DeleteJob", job), unit.name
    prod = aws_names.AwsNames("prod", account=ACCOUNT, region=REGION)
    assert not allowed(st, "glue:StartJobRun", f"{GLUE}:job/{prod.job('ingest')}")  # not another deployment's
    assert not allowed(st, "glue:StartJobRun", f"{GLUE}:job/some-other-job")
    assert allowed(st, "s3:GetObject", f"{S3}/lake/_meta/stage-results/af-1.json")
    some_table = next(iter(schemas.catalog().values()))
    assert not allowed(st, "s3:GetObject", data_file(some_table))  # MWAA never reads the lake's data
    result = f"{S3}/lake/_meta/stage-results/af-1.json"
    assert not allowed(st, "s3:PutObject", result) and not allowed(st, "s3:DeleteObject", result)
    assert not allowed(st, "iam:PassRole", "*")  # the jobs run as their own roles, set by the stack
    assert not allowed(st, "events:PutEvents", BUS, {"events:source": "msp.platform"})


def test_a_role_gets_its_agents_model_only_once_its_settings_select_bedrock():
    """The defaults keep every agent on its local template: no role may call a model. A deployment whose
    settings switch an agent to Bedrock grants that agent's role its configured model, and no other role."""
    from infra.policies import bedrock_arns, unit_statements
    from lakehouse.agents import registry

    assert not any(acc.bedrock_models for _u, acc in accesses())
    env = config.load("dev")
    switched = 0
    for agent in registry().settings_sections():
        model = env.runtime_settings(NAMES).model(agent)
        fields = type(model).model_fields
        ids = [f for f in fields if f.endswith("bedrock_model_id")]
        switches = [f for f in fields if isinstance(getattr(model, f), str)
                    and aws_names.BEDROCK in str(fields[f].annotation)]
        if not ids or not switches:
            continue
        runtime = {**env.runtime, agent: {**env.runtime.get(agent, {}), switches[0]: aws_names.BEDROCK}}
        settings = config.Environment(env.name, env.deploy, runtime, env.path).runtime_settings(NAMES)
        wanted = getattr(model, ids[0])
        switched += 1
        for unit in aws_names.units():
            acc = aws_names.access(unit, None, settings)
            st = [s.to_json() for s in unit_statements(NAMES, acc, "arn:aws:kms:us-east-1:123456789012:key/k")]
            for arn in bedrock_arns(NAMES, wanted):
                assert allowed(st, "bedrock:InvokeModel", arn) == (unit.name == agent), (agent, unit.name)
    assert switched, "no agent's settings can select Bedrock: nothing was checked"
