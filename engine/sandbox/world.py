"""The declarative spec of a sandbox mail world: domains, their DNS records, their mail servers.

A test or the demo states the world it needs (which names exist, which MX they point at, how each
mail server answers and which mailboxes it holds) and the sandbox servers answer from that spec
alone, so a test reads as its world. Everything here is plain frozen data; nothing listens yet.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final

# RFC 7505 §3: a domain that accepts no mail publishes a single MX with preference 0 and an
# empty exchange (the root, ".").
NULL_MX_HOST: Final = "."
DEFAULT_MX_PREFERENCE_STEP: Final = 10
# 127.0.0.1 is left for the DNS server; mail servers take 127.0.0.2, 127.0.0.3, ... in the order
# declared. Linux routes all of 127.0.0.0/8 to lo, so no interface set-up is needed.
FIRST_MAIL_SERVER_ADDRESS: Final = "127.0.0.2"
LOOPBACK_NETWORK: Final = ipaddress.ip_network("127.0.0.0/8")
DMARC_LABEL: Final = "_dmarc"


class Behaviour(StrEnum):
    """How a mail server treats a prober. The first five answer SMTP; the rest misbehave."""

    STRICT = "strict"  # 250 for its mailboxes, 550 5.1.1 for anyone else
    CATCH_ALL = "catch_all"  # 250 for every RCPT
    POLICY_BLOCK = "policy_block"  # 550 5.7.1 for every RCPT: refuses to be verified
    BLAME_IP_AT_BANNER = "blame_ip_at_banner"  # 554 5.7.1 "...blocked using zen.spamhaus.org"
    BLAME_IP_AT_RCPT = "blame_ip_at_rcpt"  # the same reply, to every RCPT
    BUSY = "busy"  # 421 4.3.2 at the banner, then closes
    TARPIT = "tarpit"  # accepts the connection and never says a word
    REFUSED = "refused"  # its address is declared but nothing listens: TCP RST on connect
    RESET_AFTER_MAIL = "reset_after_mail"  # TCP RST instead of the reply to MAIL FROM
    RESET_AFTER_RCPT = "reset_after_rcpt"  # TCP RST instead of the reply to the n-th RCPT
    HTTP_BANNER = "http_banner"  # a web server on the SMTP port: an HTTP 400 page, then close
    BINARY_GARBAGE = "binary_garbage"  # a valid banner, then binary bytes for every reply
    ENDLESS_MULTILINE = "endless_multiline"  # answers EHLO with "250-" lines that never end
    HUGE_LINE = "huge_line"  # a 10 MB banner line
    ACCEPT_THEN_CLOSE = "accept_then_close"  # accepts the connection and closes it at once
    TRICKLE = "trickle"  # drips a greeting that never ends, one octet at a time (slowloris)


class DnsFault(StrEnum):
    """How the sandbox DNS server misanswers every query for one name."""

    SERVFAIL = "servfail"  # RCODE 2: the authority is broken; says nothing about the name
    REFUSED = "refused"  # RCODE 5
    TIMEOUT = "timeout"  # the query is dropped, as by a dead or firewalled authority
    TRUNCATED = "truncated"  # UDP answer has TC set and no records; TCP answers in full
    TRUNCATED_NO_TCP = "truncated_no_tcp"  # TC over UDP, and TCP queries are dropped
    WRONG_ID = "wrong_id"  # the answer carries another message ID (RFC 1035 §4.1.1)
    # An off-path forger's race (RFC 5452 §4): an NXDOMAIN with another message ID arrives over
    # UDP just before the real answer. Taking it would call a live domain nonexistent.
    SPOOFED_NXDOMAIN = "spoofed_nxdomain"
    # The UDP answer leaves from another port than the query went to (RFC 5452 §9.1: not ours);
    # TCP answers normally.
    WRONG_SOURCE = "wrong_source"


@dataclass(frozen=True)
class Mx:
    """One MX record: an exchange host and its preference (lower is tried first)."""

    host: str
    preference: int = DEFAULT_MX_PREFERENCE_STEP


NULL_MX: Final = (Mx(NULL_MX_HOST, 0),)


@dataclass(frozen=True)
class Domain:
    """A DNS name and what the sandbox DNS answers for it.

    `mx` entries are host names (preference 10, 20, ... in order) or `Mx` records; `NULL_MX`
    declares RFC 7505's "accepts no mail". A name with `a`/`aaaa` but no MX is a mail domain by
    implicit MX (RFC 5321 §5.1). `spf` is served as a TXT record of the name, `dmarc` as a TXT
    record of `_dmarc.<name>` (RFC 7489 §6.1). `ptr` holds the host names of a reverse name
    (`reverse_name(address)`, RFC 1035 §3.5), so a world can give the prober's own address its
    reverse DNS. `cname` makes the name an alias (chased inside the world, so two names
    pointing at each other form a loop). `fault` overrides everything.
    """

    name: str
    mx: Sequence[str | Mx] = ()
    a: Sequence[str] = ()
    aaaa: Sequence[str] = ()
    spf: str | None = None
    dmarc: str | None = None
    txt: Sequence[str] = ()
    ptr: Sequence[str] = ()
    cname: str | None = None
    fault: DnsFault | None = None

    def __post_init__(self) -> None:
        records = tuple(
            Mx(_dns_name(entry), DEFAULT_MX_PREFERENCE_STEP * (index + 1))
            if isinstance(entry, str)
            else Mx(_dns_name(entry.host), entry.preference)
            for index, entry in enumerate(self.mx)
        )
        _set(self, name=_dns_name(self.name), mx=records, a=tuple(self.a), aaaa=tuple(self.aaaa))
        _set(self, txt=tuple(self.txt), cname=_dns_name(self.cname) if self.cname else None)
        _set(self, ptr=tuple(_dns_name(host) for host in self.ptr))
        for address in self.a:
            ipaddress.IPv4Address(address)
        for address in self.aaaa:
            ipaddress.IPv6Address(address)
        if self.cname and (self.mx or self.a or self.aaaa or self.spf or self.txt or self.ptr):
            # RFC 1034 §3.6.2: a CNAME owner has no other data.
            raise ValueError(f"{self.name}: a CNAME cannot sit beside other records")

    @property
    def txt_records(self) -> tuple[str, ...]:
        return ((self.spf,) if self.spf else ()) + tuple(self.txt)


@dataclass(frozen=True)
class Greylist:
    """RFC 6647 greylisting: a (client IP, MAIL FROM, RCPT) triplet is deferred until it was
    first seen at least `delay_s` ago; after that it passes for good."""

    delay_s: float
    code: int = 450  # 450 and 451 are both common in the wild


@dataclass(frozen=True)
class RateLimit:
    """Per-client limits, like Postfix's anvil: sessions and RCPTs per sliding window, and
    sessions at once. Beyond a session limit the banner is 421 4.7.0 and the server hangs up;
    beyond the RCPT limit each RCPT gets `rcpt_code` 4.7.1 (421 also hangs up)."""

    sessions: int | None = None
    rcpts: int | None = None
    concurrent: int | None = None
    window_s: float = 60.0
    rcpt_code: int = 450


@dataclass(frozen=True)
class ErrorPenalty:
    """Postfix's answer to sessions full of errors (smtpd_soft_error_limit = 10,
    smtpd_hard_error_limit = 20, smtpd_error_sleep_time = 1 s): once `soft_limit` error replies
    were sent in a session every reply waits `sleep_s`; at `hard_limit` the server says 421 and
    hangs up."""

    soft_limit: int = 10
    hard_limit: int = 20
    sleep_s: float = 1.0


POSTFIX_PENALTY: Final = ErrorPenalty()


@dataclass(frozen=True)
class MailServer:
    """One SMTP server, known by the MX host name that points at it.

    `mailboxes`, `full_temporary` (452 4.2.2), `full_permanent` (552 5.2.2) and `disabled`
    (550 5.2.1) hold local parts (matching at every domain the server receives for) or full
    addresses, compared case-insensitively. `latency_s` delays every reply as a network would
    (pipelined replies are not serialised by it). `max_rcpt` caps accepted recipients per
    message (452 4.5.3 beyond, RFC 5321 §4.5.3.1.10). `reset_after_rcpts` is the n of
    RESET_AFTER_RCPT. `address` pins the loopback address instead of taking the next free one.
    """

    name: str
    behaviour: Behaviour = Behaviour.STRICT
    mailboxes: Collection[str] = ()
    full_temporary: Collection[str] = ()
    full_permanent: Collection[str] = ()
    disabled: Collection[str] = ()
    latency_s: float = 0.0
    greylist: Greylist | None = None
    rate_limit: RateLimit | None = None
    penalty: ErrorPenalty | None = POSTFIX_PENALTY
    max_rcpt: int | None = None
    pipelining: bool = True
    smtputf8: bool = True
    multiline: bool = False
    reset_after_rcpts: int = 1
    address: str | None = None

    def __post_init__(self) -> None:
        _set(self, name=_dns_name(self.name))
        for name in ("mailboxes", "full_temporary", "full_permanent", "disabled"):
            _set(self, **{name: frozenset(entry.lower() for entry in getattr(self, name))})
        if self.address is not None and ipaddress.ip_address(self.address) not in LOOPBACK_NETWORK:
            raise ValueError(f"{self.name}: sandbox servers listen on 127.0.0.0/8 only")
        if self.latency_s < 0 or self.reset_after_rcpts < 1:
            raise ValueError(f"{self.name}: latency must be >= 0 and reset_after_rcpts >= 1")

    @property
    def listens(self) -> bool:
        return self.behaviour is not Behaviour.REFUSED


def reverse_name(address: str) -> str:
    """The name under in-addr.arpa / ip6.arpa whose PTR records name `address`'s host."""
    return ipaddress.ip_address(address).reverse_pointer


def holds(entries: frozenset[str], address: str) -> bool:
    """Whether an address, or its local part, is among a server's entries (case-insensitive)."""
    address = address.lower()
    return address in entries or address.rpartition("@")[0] in entries


@dataclass(frozen=True)
class World:
    """Mail servers and domains; `addresses` and `zone` are derived when the world is built.

    A server named like a declared domain without MX records is that domain's implicit MX.
    `dns_latency_s` delays every DNS answer, as a resolver's round trip would.
    """

    servers: Sequence[MailServer] = ()
    domains: Sequence[Domain] = ()
    dns_latency_s: float = 0.0
    addresses: Mapping[str, str] = field(init=False, repr=False, compare=False)
    zone: Mapping[str, Domain] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _set(self, servers=tuple(self.servers), domains=tuple(self.domains))
        _set(self, addresses=_assign_addresses(self.servers))
        _set(self, zone=_build_zone(self.domains, self.addresses))

    def server(self, name: str) -> MailServer:
        wanted = _dns_name(name)
        for server in self.servers:
            if server.name == wanted:
                return server
        raise KeyError(f"no mail server {name!r} in this world")

    def address_of(self, server_name: str) -> str:
        return self.addresses[_dns_name(server_name)]


def _assign_addresses(servers: Sequence[MailServer]) -> dict[str, str]:
    names = [server.name for server in servers]
    duplicates = {name for name in names if names.count(name) > 1}
    if duplicates:
        raise ValueError(f"mail servers declared twice: {', '.join(sorted(duplicates))}")
    pinned = {server.address for server in servers if server.address}
    if len(pinned) < sum(1 for server in servers if server.address):
        raise ValueError("two mail servers pin the same address")
    addresses: dict[str, str] = {}
    candidate = ipaddress.IPv4Address(FIRST_MAIL_SERVER_ADDRESS)
    for server in servers:
        if server.address:
            addresses[server.name] = server.address
            continue
        while str(candidate) in pinned:
            candidate += 1
        addresses[server.name] = str(candidate)
        candidate += 1
    if candidate not in LOOPBACK_NETWORK:
        raise ValueError("more mail servers than loopback addresses")
    return addresses


def _build_zone(domains: Sequence[Domain], addresses: Mapping[str, str]) -> dict[str, Domain]:
    zone: dict[str, Domain] = {}

    def add(entry: Domain) -> None:
        if entry.name in zone:
            raise ValueError(f"DNS name declared twice: {entry.name}")
        zone[entry.name] = entry

    for domain in domains:
        add(domain)
        if domain.dmarc:
            add(Domain(f"{DMARC_LABEL}.{domain.name}", txt=(domain.dmarc,)))
    for server_name, address in addresses.items():
        declared = zone.get(server_name)
        if declared is None:
            zone[server_name] = Domain(server_name, a=(address,))
        elif declared.a or declared.cname:
            raise ValueError(f"{server_name}: a mail server's name gets its address from the world")
        else:
            zone[server_name] = dataclasses.replace(declared, a=(address,))
    return zone


def _dns_name(name: str) -> str:
    """Names compare case-insensitively (RFC 4343) and without the root's trailing dot."""
    if name == NULL_MX_HOST:
        return name
    return name.strip().rstrip(".").lower()


def _set(instance: object, **values: object) -> None:
    """Normalise fields of a frozen dataclass while it is being built."""
    for name, value in values.items():
        object.__setattr__(instance, name, value)
