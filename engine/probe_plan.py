"""Which MX route each planned address is probed through, and which addresses provider policy
answers without a probe.

Work is grouped by MX route: the routable MX hosts of a domain in preference order, each host's
addresses in the order the configured resolver returned them (RFC 5321 §5.1). Domains with the
same route share a group, so the biggest MX host (Gmail in real lists) is one group whose
sessions start first. Policy comes from engine/data/mx_providers.csv through the plan's flags:
where no RCPT can tell the truth, none is sent (DESIGN §7).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Final

import polars as pl

from engine import schema
from engine.smtp_reply import RcptClass
from engine.smtp_session import is_sendable

MX_HOSTS: Final = "mx_hosts"
SMTP_PROVIDER: Final = "smtp_provider"
ACCEPTS_ALL_AT_RCPT: Final = "accepts_all_at_rcpt"
BLOCKS_VERIFICATION: Final = "blocks_verification"
DISLIKES_MULTI_RCPT: Final = "dislikes_multi_rcpt"
MX_HOST_TYPE: Final = pl.Struct(
    {
        "preference": pl.UInt16(),
        "host": pl.String(),
        "addresses": pl.List(pl.String()),
        "routable": pl.Boolean(),
    }
)
PLAN_SCHEMA: Final[dict[str, pl.DataType]] = {
    schema.EMAIL_NORMALIZED: pl.String(),
    schema.DOMAIN: pl.String(),
    MX_HOSTS: pl.List(MX_HOST_TYPE),
    SMTP_PROVIDER: pl.String(),
    ACCEPTS_ALL_AT_RCPT: pl.Boolean(),
    BLOCKS_VERIFICATION: pl.Boolean(),
    DISLIKES_MULTI_RCPT: pl.Boolean(),
}


@dataclass(frozen=True, slots=True)
class Route:
    """One place to connect to: an MX host name (for politeness and reports) and one IP."""

    host: str
    ip: str


@dataclass
class MxGroup:
    """Addresses that share one MX route; `addresses` are (email, domain) in plan order."""

    routes: tuple[Route, ...]
    one_rcpt_per_session: bool
    addresses: list[tuple[str, str]] = field(default_factory=list)

    @property
    def primary_host(self) -> str:
        return self.routes[0].host


@dataclass(frozen=True, slots=True)
class PolicyDecision:
    """An address answered without probing, and why."""

    email: str
    domain: str
    mx_host: str | None
    rcpt_class: RcptClass
    message: str
    domain_catch_all: bool | None


@dataclass
class ProbePlan:
    groups: list[MxGroup]  # biggest first: they set the makespan, so they start first
    decisions: list[PolicyDecision]


def check_plan(plan: pl.DataFrame) -> None:
    """Raises a sentence naming what is missing when a plan lacks the columns the prober reads."""
    missing = [name for name in PLAN_SCHEMA if name not in plan.columns]
    if missing:
        raise ValueError(f"the probe plan lacks the column(s) {', '.join(missing)}")


def plan_probes(plan: pl.DataFrame, *, skip: Collection[str] = ()) -> ProbePlan:
    """Groups the plan's addresses by MX route; policy answers the rest. `skip` (addresses a
    checkpoint already holds) are left out. Each address is planned once, however often listed."""
    check_plan(plan)
    domains = (
        plan.select(schema.DOMAIN, *list(PLAN_SCHEMA)[2:])
        .unique(subset=schema.DOMAIN, keep="first", maintain_order=True)
        .to_dicts()
    )
    done = pl.DataFrame(
        {schema.EMAIL_NORMALIZED: list(skip)}, schema={schema.EMAIL_NORMALIZED: pl.String}
    )
    addresses = (
        plan.select(schema.EMAIL_NORMALIZED, schema.DOMAIN)
        .unique(subset=schema.EMAIL_NORMALIZED, keep="first", maintain_order=True)
        .join(done, on=schema.EMAIL_NORMALIZED, how="anti", maintain_order="left")
        .group_by(schema.DOMAIN, maintain_order=True)
        .agg(pl.col(schema.EMAIL_NORMALIZED))
    )
    by_domain = dict(addresses.iter_rows())
    groups: dict[tuple[tuple[Route, ...], bool], MxGroup] = {}
    decisions: list[PolicyDecision] = []
    for entry in domains:
        domain = entry[schema.DOMAIN]
        emails: list[str] = by_domain.get(domain) or []
        if not emails:
            continue
        hosts = sorted(entry[MX_HOSTS] or [], key=lambda mx: mx["preference"])
        routes = tuple(
            Route(mx["host"], ip) for mx in hosts if mx["routable"] for ip in mx["addresses"] or []
        )
        verdict = _policy_verdict(entry, routes)
        if verdict is not None:
            rcpt_class, message, catch_all = verdict
            primary = routes[0].host if routes else (hosts[0]["host"] if hosts else None)
            decisions += [
                PolicyDecision(email, domain, primary, rcpt_class, message, catch_all)
                for email in emails
            ]
            continue
        one_rcpt = bool(entry[DISLIKES_MULTI_RCPT])
        group = groups.setdefault((routes, one_rcpt), MxGroup(routes, one_rcpt))
        for email in emails:
            if is_sendable(email):
                group.addresses.append((email, domain))
            else:
                decisions.append(
                    PolicyDecision(
                        email,
                        domain,
                        routes[0].host,
                        RcptClass.NOT_PROBED,
                        "not probed: the address cannot be written into RCPT TO as it is",
                        None,
                    )
                )
    ordered = sorted(
        (group for group in groups.values() if group.addresses),
        key=lambda group: len(group.addresses),
        reverse=True,
    )
    return ProbePlan(ordered, decisions)


def _policy_verdict(
    entry: dict[str, object], routes: tuple[Route, ...]
) -> tuple[RcptClass, str, bool | None] | None:
    provider = entry[SMTP_PROVIDER] or "the provider"
    if entry[BLOCKS_VERIFICATION]:
        # Its 5.7.x and 4.x answers say nothing about mailboxes: asking only burns our IP.
        message = f"not probed: {provider} is known to refuse or tarpit verification probes"
        return RcptClass.PROVIDER_BLOCKS_VERIFICATION, message, None
    if entry[ACCEPTS_ALL_AT_RCPT]:
        # It answers 250 to every RCPT and bounces later: a probe cannot tell the truth there.
        message = f"not probed: {provider} accepts every recipient at RCPT and bounces later"
        return RcptClass.ACCEPTED, message, True
    if not routes:
        return RcptClass.NOT_PROBED, "not probed: no routable MX address", None
    return None
