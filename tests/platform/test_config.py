"""Settings: layered with provenance, derived from the profile, and refusing mistakes with a message that
names the key, where it was set and what is allowed."""

from pathlib import Path

import pytest

from lakehouse.config import ConfigError, load_settings


def test_local_profile_derives_every_location_and_backend_from_home(tmp_path):
    s = load_settings(env={"MSP_HOME": str(tmp_path)})
    assert s.profile == "local"
    assert s.lake_root == str(tmp_path / "lake")
    assert s.landing_root == str(tmp_path / "landing")
    assert s.duckdb_path == tmp_path / "catalog.duckdb"
    p = s.platform
    assert (p.engine, p.table_catalog, p.catalog, p.event_bus, p.runner) == (
        "duckdb", "sql", "duckdb", "local", "local")
    assert p.iceberg_catalog_uri == f"sqlite:///{tmp_path / 'iceberg.db'}"
    assert s.sources["platform.lake_root"] == "profile local"
    assert s.sources["platform.home"] == "env MSP_HOME"


def test_file_then_environment_override_defaults_and_say_where_from(tmp_path):
    cfg = tmp_path / "msp.toml"
    cfg.write_text('[spark]\ndriver_memory = "3g"\nshuffle_partitions = 8\n[quality]\nrow_count_drop_max = 0.3\n'
                   '[cpi]\nproblem_months = 3\n')
    s = load_settings(cfg, env={"MSP_HOME": str(tmp_path), "MSP_SPARK__SHUFFLE_PARTITIONS": "6"})
    assert s.get("spark.driver_memory") == "3g"
    assert s.sources["spark.driver_memory"] == f"file {cfg}"
    assert s.model("spark").shuffle_partitions == 6  # env beats file, and is typed by the model
    assert s.sources["spark.shuffle_partitions"] == "env MSP_SPARK__SHUFFLE_PARTITIONS"
    assert s.model("quality").row_count_drop_max == 0.3
    assert s.model("cpi").problem_months == 3  # an agent's section, from its own defaults file, overridden
    assert s.sources.get("lake.snapshot_keep_days", "default") == "default"


@pytest.mark.parametrize(("where", "value", "message"), [
    ("file", "[spark]\ndriver_memroy = '3g'\n", r"unknown setting spark\.driver_memroy \(file .*\); did you mean "
                                                r"spark\.driver_memory\?"),
    ("file", "[cpi]\nproblem_months = -5\n", r"cpi\.problem_months = -5 \(file .*\): Input should be greater than "
                                             r"or equal to 1"),
    ("file", "[cpi]\ntier_bounds = [10.0, 20.0, 30.0]\n", r"\[cpi\]: tier_bounds must be strictly decreasing"),
    ("file", "[sparkk]\nmaster = 'local[2]'\n", r"unknown section \[sparkk\]; did you mean \[spark\]\?"),
    ("env", {"MSP_CPI__PROBLM_MONTHS": "3"}, r"MSP_CPI__PROBLM_MONTHS: unknown setting cpi\.problm_months; did you "
                                             r"mean MSP_CPI__PROBLEM_MONTHS\?"),
    ("env", {"MSP_CPI__PROBLEM_MONTHS": "-5"}, r"cpi\.problem_months = \"-5\" \(env MSP_CPI__PROBLEM_MONTHS\)"),
    ("env", {"MSP_SPARK__DRIVER_MEMORY": "lots"}, r"spark\.driver_memory = \"lots\" \(env MSP_SPARK__DRIVER_MEMORY\)"),
    ("env", {"MSP_SPARK__SHUFFLE_PARTITIONS": "many"}, r"MSP_SPARK__SHUFFLE_PARTITIONS.*valid integer"),
    ("env", {"MSP_ENGINE": "polars"}, r"platform\.engine = \"polars\" \(env MSP_ENGINE\): must be one of 'duckdb' or "
                                      r"'spark'"),
    ("env", {"MSP_LAKE_ROT": "/x"}, r"MSP_LAKE_ROT: unknown setting platform\.lake_rot; did you mean MSP_LAKE_ROOT\?"),
    ("env", {"MSP_CPU__X": "1"}, r"unknown settings section \[cpu\]"),
    ("env", {"MSP_PROFILE": "gcp"}, r"profile"),
])
def test_a_mistake_stops_with_the_key_its_source_and_what_is_allowed(tmp_path, where, value, message):
    env = {"MSP_HOME": str(tmp_path)}
    cfg = None
    if where == "file":
        cfg = tmp_path / "msp.toml"
        cfg.write_text(value)
    else:
        env.update(value)
    with pytest.raises(ConfigError, match=message):
        load_settings(cfg, env=env)


def test_other_tools_msp_variables_are_not_settings(tmp_path):
    s = load_settings(env={"MSP_HOME": str(tmp_path), "MSP_AIRFLOW_PORT": "8080"})
    assert s.profile == "local"


def test_aws_profile_needs_s3_roots_and_switches_every_backend(tmp_path):
    with pytest.raises(ConfigError, match="lake_root"):
        load_settings(env={"MSP_PROFILE": "aws", "MSP_HOME": str(tmp_path)})
    s = load_settings(env={"MSP_PROFILE": "aws", "MSP_HOME": str(tmp_path),
                           "MSP_LAKE_ROOT": "s3://bucket/lake", "MSP_LANDING_ROOT": "s3://bucket/landing"})
    p = s.platform
    assert (p.engine, p.table_catalog, p.catalog, p.event_bus, p.runner) == ("spark", "glue", "athena", "eventbridge",
                                                                              "glue")
    assert s.lake_root == "s3://bucket/lake"


def test_truth_inside_the_lake_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="truth_root"):
        load_settings(env={"MSP_HOME": str(tmp_path), "MSP_TRUTH_ROOT": str(tmp_path / "lake" / "truth")})
    assert Path(load_settings(env={"MSP_HOME": str(tmp_path)}).home) == tmp_path


def test_a_changed_home_derives_its_locations_again(tmp_path):
    s = load_settings(env={"MSP_HOME": str(tmp_path / "a")}).with_overrides(home=str(tmp_path / "b"))
    assert s.lake_root == str(tmp_path / "b" / "lake")
    assert s.sources["platform.home"] == "override"
