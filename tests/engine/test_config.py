"""Config precedence: defaults < mailsift.toml < MAILSIFT_* environment < explicit overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.config import Config, load_config
from engine.errors import InputError


def _home_with_toml(tmp_path: Path, text: str) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    (home / "mailsift.toml").write_text(text)
    return home


def test_defaults_are_polite_for_the_real_internet():
    config = load_config(env={})
    assert config.smtp_port == 25
    assert config.dns == []
    assert config.smtp_per_mx_concurrency <= 2
    assert config.helo is None and config.mail_from is None
    assert config.data_dir == Path(".mailsift")


def test_toml_in_home_overrides_defaults(tmp_path):
    home = _home_with_toml(tmp_path, 'helo = "mx.example.org"\nsmtp_port = 2525\n')
    config = load_config(env={"MAILSIFT_HOME": str(home)})
    assert config.helo == "mx.example.org"
    assert config.smtp_port == 2525
    assert config.data_dir == home


def test_environment_overrides_toml(tmp_path):
    home = _home_with_toml(tmp_path, "smtp_port = 2525\n")
    config = load_config(env={"MAILSIFT_HOME": str(home), "MAILSIFT_SMTP_PORT": "2626"})
    assert config.smtp_port == 2626


def test_explicit_overrides_win_and_none_means_not_given(tmp_path):
    config = load_config(
        {"smtp_port": 2727, "helo": None}, env={"MAILSIFT_SMTP_PORT": "2626", "MAILSIFT_HELO": "h"}
    )
    assert config.smtp_port == 2727
    assert config.helo == "h"


def test_dns_servers_from_environment_are_a_comma_list():
    config = load_config(env={"MAILSIFT_DNS": "127.0.0.1:5399, 127.0.0.2"})
    assert config.dns == ["127.0.0.1:5399", "127.0.0.2"]


def test_secret_in_toml_is_refused(tmp_path):
    home = _home_with_toml(tmp_path, 'webhook_secret = "hunter2"\n')
    with pytest.raises(InputError, match="only come from the environment"):
        load_config(env={"MAILSIFT_HOME": str(home)})


def test_secret_from_environment_is_hidden_in_repr():
    config = load_config(env={"MAILSIFT_WEBHOOK_SECRET": "hunter2"})
    assert config.webhook_secret is not None
    assert config.webhook_secret.get_secret_value() == "hunter2"
    assert "hunter2" not in repr(config)


def test_bad_value_is_a_one_line_input_error():
    with pytest.raises(InputError, match="smtp_port") as caught:
        load_config(env={"MAILSIFT_SMTP_PORT": "seventy"})
    assert "\n" not in str(caught.value)


def test_unknown_toml_key_is_refused(tmp_path):
    home = _home_with_toml(tmp_path, "smtp_prot = 25\n")
    with pytest.raises(InputError, match="smtp_prot"):
        load_config(env={"MAILSIFT_HOME": str(home)})


def test_config_is_immutable():
    with pytest.raises(Exception):  # noqa: B017 - pydantic raises its own ValidationError
        Config().smtp_port = 26  # type: ignore[misc]
