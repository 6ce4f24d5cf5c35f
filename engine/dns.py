"""The DNS stage: for each unique domain, where its mail would go and what it publishes.

Per domain, MX, TXT and `_dmarc` TXT are asked at once; then each distinct MX host's A and
AAAA once per run, however many domains share it (or the domain's own A/AAAA when it has no
MX: the implicit MX of RFC 5321 §5.1). The answers settle one `DnsOutcome`. A temporary failure
(SERVFAIL, timeout) always ends as `servfail`/`timeout`, which the verdict rules turn into
unknown, never into an outcome that reads as "this address bounces".

A DNSBL check of the MX addresses is left out: the public blocklists (Spamhaus and the like)
forbid commercial use without a key, and a keyed one would be its own module.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

import polars as pl

from engine.config import Config
from engine.dns_client import DnsClient, Lookup, LookupStatus
from engine.dns_servers import configured_resolver, loopback_mx_allowed, nameservers_of
from engine.dns_wire import TYPE_A, TYPE_AAAA, TYPE_MX, TYPE_TXT, child_name, wire_name
from engine.mx_address import is_routable
from engine.progress import ProgressListener, SilentProgress
from engine.reference import MX_HOST, PROVIDER, PROVIDER_POLICY_COLUMNS, provider_of_mx

STAGE: Final = "dns"
DMARC_LABEL: Final = "_dmarc"  # RFC 7489 §6.1: the policy record lives at _dmarc.<domain>
NULL_MX_EXCHANGE: Final = ""  # RFC 7505 §3: "MX 0 ." (the root, read as "")
IMPLICIT_MX_PREFERENCE: Final = 0  # RFC 5321 §5.1: the domain itself, as if an MX of preference 0
# RFC 7208 §4.5: an SPF record starts with the version section "v=spf1", ended by a space or
# the end of the record; ABNF literals are case-insensitive (RFC 5234 §2.3).
SPF_VERSION: Final = "v=spf1"
# RFC 7489 §6.4: dmarc-version = "v" *WSP "=" *WSP "DMARC1" (the value in exact case), and
# it must be the record's first tag (§6.3).
DMARC_VERSION: Final = re.compile(r"[vV][ \t]*=[ \t]*DMARC1[ \t]*(?:;|$)")


class DnsOutcome(StrEnum):
    """What DNS says about a domain as a mail destination (exactly one per domain)."""

    MX = "mx"  # MX records with at least one routable address
    IMPLICIT_MX = "implicit_mx"  # no MX; the domain's own routable A/AAAA serves (RFC 5321 §5.1)
    NULL_MX = "null_mx"  # "MX 0 .": accepts no mail (RFC 7505)
    NXDOMAIN = "nxdomain"  # the domain does not exist
    NO_MAIL_RECORDS = "no_mail_records"  # exists, with no MX and no A/AAAA
    MX_UNRESOLVABLE = "mx_unresolvable"  # every MX host is NXDOMAIN/NODATA for A and AAAA
    MX_UNROUTABLE = "mx_unroutable"  # every address of every MX host is special-purpose
    SERVFAIL = "servfail"  # temporary: an error answer, a malformed answer, a CNAME loop
    TIMEOUT = "timeout"  # temporary: no answer in time


TEMPORARY_OUTCOMES: Final = frozenset({DnsOutcome.SERVFAIL, DnsOutcome.TIMEOUT})

DOMAIN = "domain"
DNS_OUTCOME = "dns_outcome"
MX_HOSTS = "mx_hosts"
MX_RECORD = "mx_record"
SPF = "spf"
DMARC = "dmarc"
SMTP_PROVIDER = "smtp_provider"
DNS_QUERIES = "dns_queries"
DNS_ERROR = "dns_error"

MX_HOST_ENTRY: Final = pl.Struct(
    {
        "preference": pl.UInt16,
        "host": pl.String,
        "addresses": pl.List(pl.String),  # A records first, then AAAA
        "routable": pl.Boolean,
    }
)
# The stage's output, one row per unique domain, in this column order.
DNS_SCHEMA: Final = pl.Schema(
    {
        DOMAIN: pl.String,
        DNS_OUTCOME: pl.String,
        MX_HOSTS: pl.List(MX_HOST_ENTRY),
        MX_RECORD: pl.String,
        SPF: pl.Boolean,
        DMARC: pl.Boolean,
        SMTP_PROVIDER: pl.String,
        **dict.fromkeys(PROVIDER_POLICY_COLUMNS, pl.Boolean),
        DNS_QUERIES: pl.Int32,
        DNS_ERROR: pl.String,
    }
)
# What each domain's lookup yields, before its MX host list and provider are joined on.
_ROW_COLUMNS: Final = (DNS_OUTCOME, MX_RECORD, SPF, DMARC, DNS_QUERIES, DNS_ERROR)
_ROW = "_row"


def lookup_domains(
    domains: Sequence[str], config: Config, progress: ProgressListener | None = None
) -> pl.DataFrame:
    """The DNS stage for synchronous callers: runs `lookup_domains_async` on its own loop.

    Callers already inside an event loop await `lookup_domains_async` instead.
    """
    return asyncio.run(lookup_domains_async(domains, config, progress))


async def lookup_domains_async(
    domains: Sequence[str], config: Config, progress: ProgressListener | None = None
) -> pl.DataFrame:
    """One row per unique domain (DNS_SCHEMA), in first-seen order.

    Domains are lower-case A-labels; duplicates and nulls are dropped. Reports the `dns` stage
    to `progress`, one step per domain. Nothing is asked when there is no domain.
    """
    progress = progress or SilentProgress()
    unique = list(dict.fromkeys(domain for domain in domains if domain is not None))
    progress.start(STAGE, len(unique))
    lookups = _DomainLookups(len(unique), allow_loopback=loopback_mx_allowed(config))
    if unique:
        client = DnsClient(
            nameservers_of(configured_resolver(config)),
            timeout_s=config.dns_timeout_s,
            retries=config.dns_retries,
            concurrency=config.dns_concurrency,
        )
        async with client:
            await lookups.run(client, unique, progress)
    progress.finish(STAGE)
    return _with_providers(lookups.frame(unique))


def is_spf_record(text: str) -> bool:
    """RFC 7208 §4.5: the record starts with "v=spf1" followed by a space or nothing."""
    return text[:6].lower() == SPF_VERSION and (len(text) == 6 or text[6] == " ")


def is_dmarc_record(text: str) -> bool:
    """RFC 7489 §6.3: the record's first tag is v=DMARC1."""
    return DMARC_VERSION.match(text) is not None


@dataclass(frozen=True, slots=True)
class _HostAddresses:
    """What the A and AAAA lookups of one MX host found."""

    addresses: tuple[str, ...]  # A first, then AAAA, in answer order
    routable: bool
    failure: Lookup | None  # the first temporary failure among A and AAAA
    queries: int


_Settled = tuple[DnsOutcome, list[tuple[int, str]], str | None, int]


class _DomainLookups:
    """Looks up domains on one client, each MX host once per run, and keeps the results in
    columns: a row per domain, an entry per (domain, MX host), a row per host."""

    def __init__(self, domains: int, *, allow_loopback: bool) -> None:
        self._allow_loopback = allow_loopback
        self._client: DnsClient | None = None
        self.rows: list[tuple[Any, ...]] = [()] * domains
        self.entries: tuple[list[int], list[int], list[str]] = ([], [], [])
        # Tasks, not results: a host asked by two domains at once is still looked up once.
        self._hosts: dict[str, asyncio.Task[_HostAddresses]] = {}

    async def run(
        self, client: DnsClient, domains: Sequence[str], progress: ProgressListener
    ) -> None:
        self._client = client
        pending = iter(enumerate(domains))

        async def work_through() -> None:
            for index, domain in pending:
                await self._domain(index, domain)
                progress.advance(STAGE)

        # A worker keeps up to three queries in flight; the client's cap has the last word.
        workers = min(len(domains), client.concurrency)
        try:
            async with asyncio.TaskGroup() as group:
                for _ in range(workers):
                    group.create_task(work_through())
        finally:
            for task in self._hosts.values():
                task.cancel()

    async def _domain(self, index: int, domain: str) -> None:
        name = domain.rstrip(".").lower()
        try:
            qname = wire_name(name)
        except ValueError as error:
            # No zone can hold such a name, so it cannot exist; nothing is asked.
            self.rows[index] = (DnsOutcome.NXDOMAIN.value, None, False, False, 0, str(error))
            return
        assert self._client is not None
        ask = self._client.ask
        mx_asked, txt_asked = ask(qname, TYPE_MX), ask(qname, TYPE_TXT)
        try:
            dmarc_asked = ask(child_name(DMARC_LABEL, qname), TYPE_TXT)
        except ValueError:
            dmarc_asked = None  # a name near 255 octets has no room for a DMARC record
        mx = await mx_asked
        if mx.status is LookupStatus.ANSWER:
            outcome, entries, error, host_queries = await self._mail_hosts(mx.records)
        elif mx.status is LookupStatus.NODATA:
            outcome, entries, error, host_queries = await self._implicit_mx(name)
        else:
            outcome, entries, error, host_queries = DnsOutcome(mx.status.value), [], mx.error, 0
        txt = await txt_asked
        dmarc = await dmarc_asked if dmarc_asked is not None else Lookup(LookupStatus.NXDOMAIN)
        primary = next((host for _, host in entries if self._routable(host)), None)
        self.rows[index] = (
            outcome.value,
            primary or next((host for _, host in entries), None),
            _presence(txt, is_spf_record),
            _presence(dmarc, is_dmarc_record),
            mx.queries + txt.queries + dmarc.queries + host_queries,
            error,
        )
        rows, preferences, hosts = self.entries
        for preference, host in entries:
            rows.append(index)
            preferences.append(preference)
            hosts.append(host)

    async def _mail_hosts(self, records: Sequence[Any]) -> _Settled:
        # Sorted by preference, then host; RFC 7505 §3: a null MX stands alone, and beside
        # real MX records it is ignored.
        mx_records = [record for record in sorted(records) if record[1] != NULL_MX_EXCHANGE]
        if not mx_records:
            return DnsOutcome.NULL_MX, [], None, 0
        # Every host's lookup starts before any is awaited: a failover list costs one round trip.
        started = [self._host(host) for host in dict.fromkeys(h for _, h in mx_records)]
        found = [(await task, owner) for task, owner in started]
        queries = sum(result.queries for result, owner in found if owner)
        results = [result for result, _ in found]
        if any(result.routable for result in results):
            return DnsOutcome.MX, mx_records, None, queries
        failure = next((result.failure for result in results if result.failure), None)
        if failure is not None:
            # Only a definitive answer for every host may call the domain undeliverable.
            return DnsOutcome(failure.status.value), mx_records, failure.error, queries
        if any(result.addresses for result in results):
            return DnsOutcome.MX_UNROUTABLE, mx_records, None, queries
        return DnsOutcome.MX_UNRESOLVABLE, mx_records, None, queries

    async def _implicit_mx(self, name: str) -> _Settled:
        task, owner = self._host(name)
        result = await task
        queries = result.queries if owner else 0
        entries = [(IMPLICIT_MX_PREFERENCE, name)]
        if result.routable:
            return DnsOutcome.IMPLICIT_MX, entries, None, queries
        if result.failure is not None:
            return DnsOutcome(result.failure.status.value), [], result.failure.error, queries
        if result.addresses:
            return DnsOutcome.MX_UNROUTABLE, entries, None, queries
        return DnsOutcome.NO_MAIL_RECORDS, [], None, queries

    def _host(self, host: str) -> tuple[asyncio.Task[_HostAddresses], bool]:
        """The lookup of a host's addresses, and whether this caller started (and pays for) it."""
        task = self._hosts.get(host)
        if task is not None:
            return task, False
        task = self._hosts[host] = asyncio.ensure_future(self._addresses(host))
        return task, True

    async def _addresses(self, host: str) -> _HostAddresses:
        try:
            qname = wire_name(host)
        except ValueError:
            return _HostAddresses((), False, None, 0)  # an exchange no zone can hold
        assert self._client is not None
        asked = self._client.ask(qname, TYPE_A), self._client.ask(qname, TYPE_AAAA)
        a, aaaa = await asked[0], await asked[1]
        addresses: tuple[str, ...] = a.records + aaaa.records  # type: ignore[assignment]
        return _HostAddresses(
            addresses,
            any(is_routable(address, allow_loopback=self._allow_loopback) for address in addresses),
            a if a.failed else aaaa if aaaa.failed else None,
            a.queries + aaaa.queries,
        )

    def _routable(self, host: str) -> bool:
        return self._hosts[host].result().routable

    def frame(self, domains: Sequence[str]) -> pl.DataFrame:
        """The looked-up columns with each domain's MX host list, built in columns: polars
        builds a list of structs from Python dicts ~50x slower than it joins and groups."""
        columns: dict[str, Sequence[Any]] = dict.fromkeys(_ROW_COLUMNS, ())
        if domains:
            columns = dict(zip(_ROW_COLUMNS, zip(*self.rows, strict=True), strict=True))
        looked_up = pl.DataFrame(
            {_ROW: range(len(domains)), DOMAIN: domains, **columns},
            schema={_ROW: pl.UInt32, DOMAIN: pl.String, **{c: DNS_SCHEMA[c] for c in _ROW_COLUMNS}},
        )
        rows, preferences, hosts = self.entries
        entries = pl.DataFrame(
            {_ROW: rows, "preference": preferences, "host": hosts},
            schema={_ROW: pl.UInt32, "preference": pl.UInt16, "host": pl.String},
        )
        found = [task.result() for task in self._hosts.values()]
        host_table = pl.DataFrame(
            {
                "host": list(self._hosts),
                "addresses": [list(result.addresses) for result in found],
                "routable": [result.routable for result in found],
            },
            schema={"host": pl.String, "addresses": pl.List(pl.String), "routable": pl.Boolean},
        )
        mx_hosts = (
            entries.join(host_table, on="host", how="left", maintain_order="left")
            .group_by(_ROW, maintain_order=True)
            .agg(pl.struct(*(field.name for field in MX_HOST_ENTRY.fields)).alias(MX_HOSTS))
        )
        return (
            looked_up.join(mx_hosts, on=_ROW, how="left", maintain_order="left")
            .with_columns(pl.col(MX_HOSTS).fill_null(pl.lit([], dtype=DNS_SCHEMA[MX_HOSTS])))
            .drop(_ROW)
        )


def _presence(lookup: Lookup, is_record: Callable[[str], bool]) -> bool | None:
    if lookup.failed:
        return None
    return any(is_record(text) for text in lookup.records)  # type: ignore[arg-type]


def _with_providers(looked_up: pl.DataFrame) -> pl.DataFrame:
    """The provider and its policy flags for each primary MX host, matched once per host."""
    providers = provider_of_mx(looked_up.get_column(MX_RECORD)).select(
        pl.col(MX_HOST).alias(MX_RECORD),
        pl.col(PROVIDER).alias(SMTP_PROVIDER),
        *PROVIDER_POLICY_COLUMNS,
    )
    return (
        looked_up.join(providers, on=MX_RECORD, how="left", maintain_order="left")
        .with_columns(pl.col(column).fill_null(False) for column in PROVIDER_POLICY_COLUMNS)
        .select(DNS_SCHEMA.names())
        .cast(dict(DNS_SCHEMA))
    )
