"""Configuration layering and validation."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from archiver.config import auto_parallel, load_config
from archiver.errors import ConfigError


def test_defaults_without_files():
    cfg = load_config(None, None, system_file=Path("/nonexistent"))
    assert cfg.data_dir == Path("/var/lib/archiver")
    assert str(cfg.timezone) == "Asia/Shanghai"
    assert cfg.hashes == ("sha256",)
    assert cfg.dock.mount_roots == (Path("/media"), Path("/run/media"))
    assert (cfg.dock.settle_seconds, cfg.dock.max_parallel, cfg.dock.clear_after) == (
        5, auto_parallel(os.cpu_count()), "never")
    assert (auto_parallel(1), auto_parallel(2), auto_parallel(64)) == (4, 8, 16)
    assert (cfg.linking.clock_tolerance_s, cfg.linking.max_gap_s) == (30, 3)
    assert cfg.files == ()


def test_layers_system_then_user_then_data_dir_override(tmp_path: Path):
    system = tmp_path / "etc.toml"
    system.write_text('timezone = "UTC"\nhashes = ["sha256", "sm3"]\n[dock]\nmax_parallel = 4\n')
    user_dir = tmp_path / "conf"
    user_dir.mkdir()
    user = user_dir / "archiver.toml"
    user.write_text('data_dir = "../store"\n[dock]\ninboxes = ["in"]\nmax_parallel = 3\n')
    cfg = load_config(user, None, system_file=system)
    assert str(cfg.timezone) == "UTC" and cfg.hashes == ("sha256", "sm3")  # from the system file
    assert cfg.dock.max_parallel == 3  # the user file wins
    assert cfg.data_dir == tmp_path / "store"  # relative to the file that says it
    assert cfg.dock.inboxes == (user_dir / "in",)
    assert cfg.files == (system, user)
    assert load_config(user, Path("/srv/x"), system_file=system).data_dir == Path("/srv/x")


def test_env_and_flags(cli, tmp_path: Path, data_dir: Path):
    """ARCHIVER_DATA_DIR sets the data dir; --data-dir wins over it; --config over ARCHIVER_CONFIG."""
    result = cli("--data-dir", tmp_path / "flagged", "init")
    assert result.exit_code == 0 and (tmp_path / "flagged" / "catalog.db").is_file()
    assert not data_dir.exists()
    assert cli("init").exit_code == 0 and (data_dir / "catalog.db").is_file()
    bad = tmp_path / "bad.toml"
    bad.write_text("nope = 1\n")
    assert cli("init", config=bad).exit_code == 2
    assert cli("--config", tmp_path / "none.toml", "init", config=bad).stderr.startswith(
        f"Error: config file {tmp_path / 'none.toml'} not found")


def test_bad_values(tmp_path: Path):
    config = tmp_path / "c.toml"
    for text, fragment in (('[dock]\nclear_after = "always"\n', "'dock.clear_after'"),
                           ('[naming]\npatterns = ["(unclosed"]\n', "not a valid regex"),
                           ('[naming]\npatterns = ["^x$"]\n', "needs a (?P<serial>"),
                           ("dock = 3\n", "must be a table"),
                           ('hashes = "sha256"\n', "must be a list of strings")):
        config.write_text(text)
        with pytest.raises(ConfigError, match=fragment.replace("(", r"\(").replace("?", r"\?")):
            load_config(config, None, system_file=Path("/nonexistent"))


def test_documented_config_file_holds_every_key_with_its_default():
    """config/archiver.toml documents every key; loading it gives exactly the built-in defaults."""
    repo = Path(__file__).resolve().parent.parent
    documented = load_config(repo / "config" / "archiver.toml", None, system_file=Path("/nonexistent"))
    defaults = load_config(None, None, system_file=Path("/nonexistent"))
    assert documented.__dict__ | {"files": ()} == defaults.__dict__
    text = (repo / "config" / "archiver.toml").read_text()
    from archiver.config import DEFAULTS

    for key, value in DEFAULTS.items():
        names = value.keys() if isinstance(value, dict) else [key]
        for name in names:
            assert f"\n{name} = " in text or text.startswith(f"{name} = "), name


@pytest.mark.parametrize("url", [
    "postgresql+psycopg://archiver:s3cret@db.county/archive",
    "postgresql+psycopg://archiver@db.county/archive?password=s3cret",
    "postgresql+psycopg://archiver@/archive?host=/run/pg&PASSWORD=s3cret",
    "postgresql+psycopg://archiver@db.county/archive?sslmode=require&password=",
])
def test_a_database_password_in_any_form_is_refused_in_a_config_everyone_may_read(tmp_path: Path, url: str):
    config = tmp_path / "archiver.toml"
    config.write_text(f'[catalog]\nurl = "{url}"\n')
    config.chmod(0o644)
    with pytest.raises(ConfigError, match="holds a secret"):
        load_config(config, tmp_path / "data", system_file=Path("/nonexistent"))
    config.chmod(0o640)  # the reader group's and the owner's alone: taken
    assert load_config(config, tmp_path / "data", system_file=Path("/nonexistent")).catalog_url == url


def test_a_database_url_without_a_password_is_no_secret(tmp_path: Path):
    config = tmp_path / "archiver.toml"
    config.write_text('[catalog]\nurl = "postgresql+psycopg://archiver@/archive?host=/run/postgresql"\n')
    config.chmod(0o644)
    assert load_config(config, tmp_path / "data", system_file=Path("/nonexistent")).catalog_url.endswith("postgresql")
