from pathlib import Path

import pytest

from lakehouse.config import ConfigError, load_settings


def test_local_profile_derives_every_location_from_home(tmp_path):
    s = load_settings(env={"MSP_HOME": str(tmp_path)})
    assert s.profile == "local"
    assert s.lake_root == str(tmp_path / "lake")
    assert s.landing_root == str(tmp_path / "landing")
    assert s.duckdb_path == tmp_path / "catalog.duckdb"
    assert (s.catalog_kind, s.event_bus, s.runner) == ("duckdb", "outbox", "local")
    assert s.sources["platform.lake_root"] == "profile local"
    assert s.sources["platform.home"] == "env MSP_HOME"


def test_file_then_environment_override_defaults_and_say_where_from(tmp_path):
    cfg = tmp_path / "msp.toml"
    cfg.write_text('[spark]\ndriver_memory = "3g"\nshuffle_partitions = 8\n[quality]\nrow_count_drop_max = 0.3\n')
    s = load_settings(cfg, env={"MSP_HOME": str(tmp_path), "MSP_SPARK__SHUFFLE_PARTITIONS": "6"})
    assert s.get("spark.driver_memory") == "3g"
    assert s.sources["spark.driver_memory"] == f"file {cfg}"
    assert s.get("spark.shuffle_partitions") == 6  # env beats file, and is typed like the default
    assert s.sources["spark.shuffle_partitions"] == "env MSP_SPARK__SHUFFLE_PARTITIONS"
    assert s.get("quality.row_count_drop_max") == 0.3
    assert s.sources.get("lake.keep_versions", "default") == "default"


def test_unknown_setting_in_file_is_an_error_naming_it(tmp_path):
    cfg = tmp_path / "msp.toml"
    cfg.write_text("[spark]\ndriver_memroy = '3g'\n")
    with pytest.raises(ConfigError, match=r"spark\.driver_memroy"):
        load_settings(cfg, env={})


def test_aws_profile_needs_s3_roots_and_switches_every_backend(tmp_path):
    with pytest.raises(ConfigError, match="lake_root"):
        load_settings(env={"MSP_PROFILE": "aws", "MSP_HOME": str(tmp_path)})
    s = load_settings(env={"MSP_PROFILE": "aws", "MSP_HOME": str(tmp_path),
                           "MSP_LAKE_ROOT": "s3://bucket/lake", "MSP_LANDING_ROOT": "s3://bucket/landing"})
    assert (s.catalog_kind, s.event_bus, s.runner) == ("glue", "eventbridge", "glue")
    assert s.lake_root == "s3://bucket/lake"


def test_truth_inside_the_lake_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="truth_root"):
        load_settings(env={"MSP_HOME": str(tmp_path), "MSP_TRUTH_ROOT": str(tmp_path / "lake" / "truth")})


def test_bad_values_are_reported_with_their_variable(tmp_path):
    with pytest.raises(ConfigError, match="MSP_SPARK__SHUFFLE_PARTITIONS"):
        load_settings(env={"MSP_HOME": str(tmp_path), "MSP_SPARK__SHUFFLE_PARTITIONS": "many"})
    with pytest.raises(ConfigError, match="profile"):
        load_settings(env={"MSP_HOME": str(tmp_path), "MSP_PROFILE": "gcp"})
    assert Path(load_settings(env={"MSP_HOME": str(tmp_path)}).home) == tmp_path
