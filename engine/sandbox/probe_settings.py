"""How a verifier is pointed at a running sandbox world: its DNS, its SMTP port, its identity.

The sandbox answers in seconds what the internet answers in minutes, so the retry schedule and
the timeouts shrink with it; everything else (caps, batch sizes) stays as a real run has it.
"""

from __future__ import annotations

from typing import Any, Final

from engine.sandbox.demo_world import GREYLIST_DELAY_S, VERIFIER_DOMAIN

SANDBOX_HELO: Final = VERIFIER_DOMAIN
SANDBOX_MAIL_FROM: Final = f"probe@{VERIFIER_DOMAIN}"


def sandbox_overrides(dns_address: str, smtp_port: int) -> dict[str, Any]:
    """Config fields for a run against the world listening at `dns_address` / `smtp_port`."""
    return {
        "sandbox": True,
        "allow_loopback_mx": True,
        "dns": [dns_address],
        "smtp_port": smtp_port,
        "helo": SANDBOX_HELO,
        "mail_from": SANDBOX_MAIL_FROM,
        "greylist_retry_s": [GREYLIST_DELAY_S + 0.5, GREYLIST_DELAY_S * 2],
        "smtp_backoff_s": 1.0,
        "smtp_connect_timeout_s": 2.0,
        "smtp_command_timeout_s": 3.0,
        "dns_timeout_s": 1.0,
    }
