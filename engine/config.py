"""The one typed configuration object shared by the CLI, the Dagster resources and the Python API.

Filled in this order, later wins (DESIGN §4): defaults safe on the real internet,
`$MAILSIFT_HOME/mailsift.toml`, `MAILSIFT_<OPTION>` environment variables, explicit overrides
(CLI flags). Secrets are read from the environment only, never from the toml file.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from engine.errors import InputError

ENV_PREFIX = "MAILSIFT_"
CONFIG_FILE_NAME = "mailsift.toml"
DEFAULT_DATA_DIR = Path(".mailsift")
SECRET_FIELDS = frozenset({"webhook_secret"})

Depth = Literal["syntax", "dns", "smtp"]


class Config(BaseModel):
    """Every knob of a run. Defaults are the polite real-internet ones; the sandbox overrides."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    data_dir: Path = DEFAULT_DATA_DIR
    depth: Depth = "smtp"
    column: str | None = Field(None, description="Name of the email column; found automatically")
    # Network identity. Real runs must name their own HELO host and sender (no impersonation).
    dns: list[str] = Field(default_factory=list, description="HOST[:PORT]; empty = system resolver")
    smtp_port: int = Field(25, ge=1, le=65535)
    helo: str | None = None
    mail_from: str | None = None
    source_address: str | None = None
    # DNS pacing.
    # Queries in flight; at 30 ms per answer 128 allows ~1,200 domains/s (3.4 queries each).
    dns_concurrency: int = Field(128, ge=1, le=4096)
    # An MX on 127.0.0.0/8 is a mail server only in a loopback test world (the sandbox); on the
    # real internet it is a misconfiguration, and probing it would reach this very machine.
    allow_loopback_mx: bool = False
    dns_timeout_s: float = Field(3.0, gt=0)
    dns_retries: int = Field(2, ge=0, le=10)
    # SMTP politeness (DESIGN §7): low per-MX concurrency, small RCPT batches, slow retries.
    smtp_per_mx_concurrency: int = Field(2, ge=1, le=64)
    smtp_global_concurrency: int = Field(50, ge=1, le=4096)
    smtp_rcpt_per_session: int = Field(10, ge=1, le=100)
    smtp_connect_timeout_s: float = Field(10.0, gt=0)
    # RFC 5321 §4.5.3.2 suggests 5 min per command; a verifier gives up sooner and says unknown.
    smtp_command_timeout_s: float = Field(30.0, gt=0)
    # Postfix delays every reply after 10 rejected RCPTs and drops the session at 20 (DESIGN §7).
    smtp_max_rejections_per_session: int = Field(8, ge=1, le=50)
    smtp_pipelining: bool = True
    smtp_starttls: bool = False
    catch_all_probe: bool = True
    greylist_retry_s: list[float] = Field(default_factory=lambda: [60.0, 300.0, 900.0])
    # Back-off after 421 / "too many": base seconds, doubled per strike, with jitter.
    smtp_backoff_s: float = Field(30.0, gt=0)
    # History and cache.
    refresh: bool = False
    max_age_days: float = Field(30.0, ge=0)
    # Domain facts (DNS outcome, catch-all) change less often than mailboxes but matter more when
    # wrong: a shorter TTL of their own (seed 001 caches domain results for days, not weeks).
    domain_max_age_days: float = Field(7.0, ge=0)
    # Probe budgets (the seeds' credits): probing stops cleanly once spent; the rest is
    # unknown/not_probed and the summary says so. None = unlimited.
    probe_budget: int | None = Field(None, ge=0)
    probe_budget_per_day: int | None = Field(None, ge=0)
    # Scale-out: the probe stage split by MX host into this many shards (Dagster runs them as
    # parallel steps; each MX host stays in one shard, so per-MX caps still hold).
    probe_shards: int = Field(1, ge=1, le=64)
    # Outputs and notifications.
    webhook_url: str | None = None
    webhook_secret: SecretStr | None = None
    # SSRF guard off: only for receivers on loopback / a private network (tests, in-house hooks).
    webhook_allow_private: bool = False
    # Addresses in logs and Dagster metadata: "hashed" shows h:<sha256 prefix> (engine.privacy).
    log_addresses: Literal["plain", "hashed"] = "plain"
    progress: bool = True
    sandbox: bool = False

    @field_validator("dns", "greylist_retry_s", mode="before")
    @classmethod
    def _split_comma_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("data_dir")
    @classmethod
    def _globbable_data_dir(cls, value: Path) -> Path:
        # DuckDB's glob reads `\\` as a path separator and would read another directory's history
        # (engine.catalog.require_globbable): refused here, before a run writes anything.
        if "\\" in str(value.absolute()):
            raise ValueError("the path holds a backslash, which DuckDB reads as a path separator")
        return value

    @property
    def config_file(self) -> Path:
        return self.data_dir / CONFIG_FILE_NAME


def _env_values(env: Mapping[str, str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name in Config.model_fields:
        raw = env.get(ENV_PREFIX + name.upper())
        if raw is not None:
            values[name] = raw
    if "MAILSIFT_HOME" in env and "data_dir" not in values:
        values["data_dir"] = env["MAILSIFT_HOME"]
    return values


def _file_values(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise InputError(f"not a valid TOML file ({error})", path=path) from error
    values = document.get("mailsift", document)
    # The top level counts too: beside a [mailsift] table a secret there was silently ignored,
    # yet it still sat in a file, which is what the rule forbids.
    secrets = SECRET_FIELDS & (values.keys() | document.keys())
    if secrets:
        raise InputError(
            f"{', '.join(sorted(secrets))} may only come from the environment "
            f"({ENV_PREFIX}{next(iter(sorted(secrets))).upper()}), not from a file",
            path=path,
        )
    return values


def load_config(
    overrides: Mapping[str, Any] | None = None, env: Mapping[str, str] | None = None
) -> Config:
    """Build the config from defaults, the data dir's toml, the environment and `overrides`.

    `overrides` holds only the options the caller set explicitly (None values are ignored), so a
    CLI flag left at its default never hides an environment variable.
    """
    env = os.environ if env is None else env
    explicit = {k: v for k, v in (overrides or {}).items() if v is not None}
    from_env = _env_values(env)
    data_dir = Path(explicit.get("data_dir") or from_env.get("data_dir") or DEFAULT_DATA_DIR)
    merged: dict[str, Any] = {}
    merged.update(_file_values(data_dir / CONFIG_FILE_NAME))
    merged.update(from_env)
    merged.update(explicit)
    merged["data_dir"] = data_dir
    try:
        return Config(**merged)
    except ValidationError as error:
        first = error.errors()[0]
        option = ".".join(str(p) for p in first["loc"])
        raise InputError(f"bad value for option {option!r}: {first['msg']}") from error
