"""Shared fixtures: every test gets its own data dir; nothing touches the user's ~/.mailsift."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "mailsift-home"
    monkeypatch.setenv("MAILSIFT_HOME", str(home))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster-home"))
    return home
