"""Settings come from defaults, a TOML file, GPUCLOUD_* variables and flags, in that order."""

from pathlib import Path

import pytest

from gpucloud.config import load_settings
from gpucloud.errors import ConfigError


def test_defaults_give_an_embedded_sqlite_in_the_data_dir(tmp_path):
    s = load_settings({"data_dir": str(tmp_path)}, environ={})
    assert s.resolved_database_url == f"sqlite:///{tmp_path / 'gpucloud.sqlite'}"
    assert s.is_sqlite and s.placement_policy == "pack" and s.port == 8080


def test_file_then_environment_then_flags(tmp_path):
    (tmp_path / "gpucloud.toml").write_text('port = 9000\n[placement]\npolicy = "spread"\n')
    env = {"GPUCLOUD_DATA_DIR": str(tmp_path), "GPUCLOUD_PORT": "9100"}
    assert load_settings(environ=env).port == 9100
    assert load_settings(environ=env).placement_policy == "spread"
    assert load_settings({"port": 9200}, environ=env).port == 9200


def test_explicit_config_file(tmp_path):
    cfg = tmp_path / "other.toml"
    cfg.write_text('database_url = "postgresql://u@db.internal/gpucloud"\n')
    s = load_settings({"config": str(cfg)}, environ={})
    assert s.resolved_database_url == "postgresql://u@db.internal/gpucloud"
    assert not s.is_sqlite


@pytest.mark.parametrize("content, message", [
    ("port = [", "invalid TOML"),
    ("colour = 'blue'", "unknown setting(s): colour"),
    ("port = 'eighty'", "port must be int"),
    ("[placement]\npolicy = 'best'", "placement_policy must be pack or spread or first-fit"),
])
def test_bad_files_name_the_file_and_the_problem(tmp_path, content, message):
    cfg = tmp_path / "bad.toml"
    cfg.write_text(content)
    with pytest.raises(ConfigError) as err:
        load_settings({"config": str(cfg)}, environ={})
    assert str(cfg) in err.value.reason and message in err.value.reason
    assert "\n" not in err.value.reason


def test_bad_environment_value_names_the_variable():
    with pytest.raises(ConfigError, match="GPUCLOUD_PORT: port must be int"):
        load_settings(environ={"GPUCLOUD_PORT": "x", "GPUCLOUD_DATA_DIR": "/nonexistent"})


def test_missing_config_file_is_one_line(tmp_path):
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_settings({"config": str(Path(tmp_path) / "absent.toml")}, environ={})


def test_simulated_steps_outlast_a_3_second_poll_by_default(tmp_path):
    """The demo's hosts take seconds per step, so a client polling every 3 s sees each status."""
    s = load_settings({"data_dir": str(tmp_path)}, environ={})
    steps = (s.sim_provision_seconds, s.sim_boot_seconds, s.sim_shutdown_seconds, s.sim_rebuild_seconds)
    assert min(steps) > 3 and s.sim_shutdown_seconds + s.sim_resize_seconds > 3
