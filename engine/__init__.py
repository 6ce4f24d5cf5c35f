"""mailsift's verification engine: plain Python, no Dagster. Start at `verify_file`.

The public names are imported lazily so that importing one small module (say `engine.schema`) does
not pull in the whole engine.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_PUBLIC = {
    "Config": "engine.config",
    "load_config": "engine.config",
    "VerificationRun": "engine.verify",
    "verify_addresses": "engine.verify",
    "verify_file": "engine.verify",
}

__all__ = sorted(_PUBLIC)


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        return getattr(import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'engine' has no attribute {name!r}")
