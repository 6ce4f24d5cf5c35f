"""A generated list with the mix real lists have, for `mailsift demo` and the tests.

Deterministic for a seed, so a demo run can be compared with the last one.
"""

from __future__ import annotations

import random
from pathlib import Path

import polars as pl

FIRST_NAMES = ("alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy")
LAST_NAMES = ("smith", "jones", "garcia", "miller", "davis", "martin", "lopez", "wilson", "moore")
COMPANY_DOMAINS = tuple(f"company{i}.example" for i in range(40))
FREE_DOMAINS = ("gmail.com", "yahoo.com", "outlook.com", "gmx.de", "web.de")
DISPOSABLE_DOMAINS = ("mailinator.com", "10minutemail.com", "guerrillamail.com")
TYPO_DOMAINS = ("gmial.com", "hotmial.com", "yaho.com")
ROLE_LOCALS = ("info", "support", "sales", "admin", "postmaster")
BROKEN = (
    "",
    "no-at-sign.example",
    "two@@ats.example",
    "trailing.dot.@company1.example",
    "double..dot@company2.example",
    "spaces in@company3.example",
    "=cmd|' /C calc'!A0",
    "a" * 1000 + "@company4.example",
)


def _address(rng: random.Random, index: int) -> str:
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    draw = rng.random()
    if draw < 0.02:
        return rng.choice(BROKEN)
    if draw < 0.04:
        return f"{first}.{last}{index}@{rng.choice(DISPOSABLE_DOMAINS)}"
    if draw < 0.06:
        return f"{rng.choice(ROLE_LOCALS)}@{rng.choice(COMPANY_DOMAINS)}"
    if draw < 0.07:
        return f"{first}{index}@{rng.choice(TYPO_DOMAINS)}"
    if draw < 0.55:
        return f"{first}.{last}{index}@{rng.choice(FREE_DOMAINS)}"
    return f"{first[0]}{last}{index}@{rng.choice(COMPANY_DOMAINS)}"


def write_sample_list(path: Path, rows: int = 20_000, seed: int = 7) -> Path:
    """Write a CSV (`email,first_name,last_name`) with ~5% duplicates and ~2% broken cells."""
    rng = random.Random(seed)
    emails: list[str] = []
    for index in range(rows):
        if emails and rng.random() < 0.05:
            emails.append(rng.choice(emails).upper() if rng.random() < 0.3 else rng.choice(emails))
        else:
            emails.append(_address(rng, index))
    names = [e.split("@")[0].split(".") for e in emails]
    frame = pl.DataFrame(
        {
            "email": emails,
            "first_name": [n[0].title() if len(n) > 1 else None for n in names],
            "last_name": [n[1].title() if len(n) > 1 else None for n in names],
        }
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.write_csv(path)
    return path
