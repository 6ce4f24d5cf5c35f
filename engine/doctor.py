"""The preflight (`mailsift doctor`): is this machine fit to verify mail before a list is spent?

A verifier that cannot reach port 25, or that greets servers under a name its address does not
own, gets `unknown` for every address and no evidence why: mail servers refuse or tarpit clients
without forward-confirmed reverse DNS, and blame blocklisted addresses. Each check answers one
such question with pass / warn / fail / skip, a one-line detail and a one-line fix, within a
bounded time (`check_budget_s`).

Every DNS question goes through the configured resolver (engine/dns_servers.py), so `--dns`
points the whole preflight at a test world. The SMTP check reads the banner and says QUIT: no
MAIL, no RCPT, never DATA (DESIGN §7).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ipaddress
import socket
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final

import idna
from publicsuffixlist import PublicSuffixList

from engine.config import Config
from engine.dns import DMARC_LABEL, NULL_MX_EXCHANGE, is_dmarc_record, is_spf_record
from engine.dns_client import DnsClient, Lookup, LookupStatus, Nameserver
from engine.dns_servers import configured_resolver, loopback_mx_allowed, nameservers_of
from engine.dns_wire import TYPE_A, TYPE_AAAA, TYPE_MX, TYPE_PTR, TYPE_TXT, type_name, wire_name
from engine.errors import InputError
from engine.mx_address import is_routable
from engine.smtp_session import MAX_REPLY_LINE, MAX_REPLY_LINES, Verb, command_line

SERVICE_READY: Final = 220  # RFC 5321 §4.2.3
# A preflight should answer in seconds: the run's own timeouts, capped. Postfix's postscreen
# holds its greeting for up to 6 s (postscreen_greet_wait), so the banner wait stays above that.
CONNECT_TIMEOUT_CAP_S: Final = 10.0
BANNER_TIMEOUT_CAP_S: Final = 15.0
QUIT_TIMEOUT_S: Final = 2.0
# A second MX address tells a dead server from a blocked port; a third adds time, not insight.
MAX_CONNECT_ATTEMPTS: Final = 2
DETAIL_TEXT_LIMIT: Final = 90
# RFC 5782 §2.1: a listing is an A record in 127.0.0.0/8. Spamhaus answers 127.255.255.252-255
# for "typo in the zone", "public/open resolver", "excessive queries": a refusal, not a listing.
DNSBL_LISTED: Final = ipaddress.ip_network("127.0.0.0/8")
DNSBL_REFUSED: Final = ipaddress.ip_network("127.255.255.0/24")
REVERSE_SUFFIXES: Final = (".in-addr.arpa", ".ip6.arpa")
SET_IDENTITY: Final = "set --helo / --mail-from"
FIX_DNS_FIRST: Final = "make the DNS servers answer first (see the DNS servers check)"


class Outcome(StrEnum):
    """How a check ended, worst last."""

    PASS = "pass"
    SKIP = "skip"
    WARN = "warn"
    FAIL = "fail"


SEVERITY: Final = {Outcome.PASS: 0, Outcome.SKIP: 0, Outcome.WARN: 1, Outcome.FAIL: 2}


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One check's verdict: what it found (`detail`) and what to do about it (`fix`)."""

    name: str
    outcome: Outcome
    detail: str
    fix: str = ""


@dataclass(frozen=True, slots=True)
class _Finding:
    """A check's verdict before the runner names it."""

    outcome: Outcome
    detail: str
    fix: str = ""


@dataclass
class _Preflight:
    """What the checks share: the config, one DNS client, and what earlier checks learnt."""

    config: Config
    client: DnsClient
    probe_domain: str | None
    dnsbl_zones: tuple[str, ...]
    # Our address as mail servers see it: --source-address, else the local address of the
    # port-25 connection (when it is one the internet could see).
    outbound_address: str | None = None
    outbound_note: str = "port 25 was not reached"
    nameservers: tuple[Nameserver, ...] = field(default_factory=tuple)

    async def ask(self, name: str, qtype: int) -> Lookup:
        try:
            qname = wire_name(name)
        except ValueError as error:
            return Lookup(LookupStatus.NXDOMAIN, error=str(error))
        return await self.client.ask(qname, qtype)

    def learn_outbound(self, address: str, how: str) -> None:
        if is_routable(address, allow_loopback=loopback_mx_allowed(self.config)):
            self.outbound_address = address
            self.outbound_note = how
        else:
            self.outbound_note = f"{how} is {address}, a private address (behind NAT?)"


_Check = Callable[[_Preflight], Awaitable[_Finding]]


def run_doctor(
    config: Config, *, probe_domain: str | None = None, dnsbl_zones: Sequence[str] = ()
) -> list[CheckResult]:
    """Every preflight check, in order, for synchronous callers (the CLI)."""
    return asyncio.run(run_doctor_async(config, probe_domain=probe_domain, dnsbl_zones=dnsbl_zones))


async def run_doctor_async(
    config: Config, *, probe_domain: str | None = None, dnsbl_zones: Sequence[str] = ()
) -> list[CheckResult]:
    """The checks' results, in order. `probe_domain` is whose MX the port-25 check dials
    (default: MAIL FROM's domain); `dnsbl_zones` turns the blocklist check on."""
    domain = _option_name("--probe-domain", probe_domain) if probe_domain else None
    domain = domain or _mail_from_domain(config)
    zones = tuple(_option_name("--dnsbl", zone) for zone in dnsbl_zones)
    try:
        nameservers = nameservers_of(configured_resolver(config))
    except InputError as error:
        return _without_dns(str(error))
    client = DnsClient(
        nameservers, timeout_s=config.dns_timeout_s, retries=config.dns_retries, concurrency=16
    )
    try:
        await client.open()
    except OSError as error:
        await client.close()
        return _without_dns(f"cannot reach the DNS servers: {error.strerror or error}")
    budget_s = check_budget_s(config)
    preflight = _Preflight(config, client, domain, zones, nameservers=tuple(nameservers))
    if config.source_address:
        preflight.learn_outbound(config.source_address, "--source-address")
    results = []
    try:
        for name, check in CHECKS:
            try:
                async with asyncio.timeout(budget_s):
                    finding = await check(preflight)
            except TimeoutError:
                finding = _Finding(
                    Outcome.FAIL,
                    f"did not finish within {budget_s:g} s",
                    "check the network and the DNS servers, then run doctor again",
                )
            results.append(CheckResult(name, finding.outcome, finding.detail, finding.fix))
    finally:
        await client.close()
    return results


def has_failures(results: Sequence[CheckResult]) -> bool:
    return any(result.outcome is Outcome.FAIL for result in results)


def check_budget_s(config: Config) -> float:
    """The most any one check may take: a few DNS round trips plus the connection attempts."""
    lookup_s = config.dns_timeout_s * (config.dns_retries + 1)
    return 4 * lookup_s + MAX_CONNECT_ATTEMPTS * (_connect_timeout_s(config) + _banner_s(config))


# --- (5) the DNS servers ---


async def check_dns_servers(preflight: _Preflight) -> _Finding:
    """Each configured server, alone, answers one question within dns_timeout_s."""
    name, qtype = preflight.probe_domain, TYPE_MX
    if name is None:
        name, qtype = _helo(preflight.config), TYPE_A
    if name is None:
        return _Finding(Outcome.FAIL, "nothing to ask: no MAIL FROM or HELO", SET_IDENTITY)
    asked = f"{type_name(qtype)} {name}"
    answers = await asyncio.gather(
        *(_ask_alone(server, name, qtype, preflight.config) for server in preflight.nameservers)
    )
    failed = [_failure(lookup) for lookup, _ in answers if lookup.failed]
    if not failed:
        slowest_ms = max(elapsed for _, elapsed in answers) * 1000
        servers = ", ".join(str(server) for server in preflight.nameservers)
        return _Finding(Outcome.PASS, f"{servers} answered {asked} in {slowest_ms:.0f} ms")
    fix = "use DNS servers that answer (--dns HOST[:PORT]), e.g. a local caching resolver"
    outcome = Outcome.WARN if len(failed) < len(answers) else Outcome.FAIL
    return _Finding(outcome, "; ".join(failed), fix)


async def _ask_alone(
    server: Nameserver, name: str, qtype: int, config: Config
) -> tuple[Lookup, float]:
    """One question to one server, one try: how the server itself fares, and how fast."""
    started = time.monotonic()
    try:
        qname = wire_name(name)
        async with DnsClient(
            [server], timeout_s=config.dns_timeout_s, retries=0, concurrency=1
        ) as alone:
            lookup = await alone.ask(qname, qtype)
    except (ValueError, OSError) as error:
        lookup = Lookup(LookupStatus.SERVFAIL, error=str(error))
    return lookup, time.monotonic() - started


# --- (1) outbound port 25 ---


async def check_port_25(preflight: _Preflight) -> _Finding:
    """Connects to the probe domain's MX, reads its banner and says QUIT."""
    domain = preflight.probe_domain
    if domain is None:
        return _Finding(
            Outcome.FAIL, "no MAIL FROM domain to dial", f"{SET_IDENTITY} (or --probe-domain)"
        )
    targets, problem = await _mx_addresses(preflight, domain)
    if problem is not None:
        return problem
    dials = []
    for host, address in targets[:MAX_CONNECT_ATTEMPTS]:
        dial = await _dial(preflight, host, address)
        if dial.code == SERVICE_READY:
            return _Finding(Outcome.PASS, f"{dial.where} greeted {dial.code} {_short(dial.text)}")
        dials.append(dial)
    greeted = next((dial for dial in dials if dial.code is not None), None)
    if greeted is not None:
        return _Finding(
            Outcome.WARN,
            f"{greeted.where} is reachable but greeted {greeted.code} {_short(greeted.text)}",
            "read the greeting: the server may refuse our address (reverse DNS, blocklist)",
        )
    detail = "; ".join(f"{dial.where}: {dial.text}" for dial in dials)
    if any(dial.connected for dial in dials):
        fix = "a firewall or proxy may hold port 25: run from a host with open outbound SMTP"
        return _Finding(Outcome.FAIL, detail, fix)
    return _Finding(
        Outcome.FAIL,
        detail,
        "outbound port 25 looks blocked (most ISPs and clouds block it): run from a host "
        "allowed to send SMTP, or ask the provider to open it",
    )


@dataclass(frozen=True, slots=True)
class _Dial:
    """One connection attempt: whether TCP connected, the greeting's code (None: no greeting)
    and its text, or what went wrong."""

    where: str
    connected: bool
    code: int | None
    text: str


async def _mx_addresses(
    preflight: _Preflight, domain: str
) -> tuple[list[tuple[str, str]], _Finding | None]:
    """(host, address) to dial, by MX preference (RFC 5321 §5.1), or why there is none."""
    other_domain = "name a domain that receives mail with --probe-domain"
    mx = await preflight.ask(domain, TYPE_MX)
    if mx.status is LookupStatus.ANSWER:
        records = sorted(mx.records)  # type: ignore[type-var]
        hosts = [host for _, host in records if host != NULL_MX_EXCHANGE]
        if not hosts:
            return [], _Finding(
                Outcome.FAIL, f"{domain} publishes a null MX (RFC 7505): no mail", other_domain
            )
    elif mx.status is LookupStatus.NODATA:
        hosts = [domain]  # the implicit MX
    elif mx.status is LookupStatus.NXDOMAIN:
        return [], _Finding(Outcome.FAIL, f"{domain} does not exist in DNS", other_domain)
    else:
        detail = f"the MX of {domain} could not be looked up: {_failure(mx)}"
        return [], _Finding(Outcome.FAIL, detail, FIX_DNS_FIRST)
    allow_loopback = loopback_mx_allowed(preflight.config)
    targets: list[tuple[str, str]] = []
    for host in dict.fromkeys(hosts):
        if len(targets) >= MAX_CONNECT_ATTEMPTS:
            break
        for address in await _addresses(preflight, host):
            if is_routable(address, allow_loopback=allow_loopback):
                targets.append((host, address))
    if not targets:
        detail = f"no MX host of {domain} has an address the internet can reach"
        return [], _Finding(Outcome.FAIL, detail, other_domain)
    return targets, None


async def _dial(preflight: _Preflight, host: str, address: str) -> _Dial:
    """Connects, learns our local address, reads the greeting, says QUIT (nothing else)."""
    config = preflight.config
    where = f"{host} ({address}:{config.smtp_port})"
    local = (config.source_address, 0) if config.source_address else None
    connect_s, banner_s = _connect_timeout_s(config), _banner_s(config)
    try:
        async with asyncio.timeout(connect_s):
            # AI_NUMERICHOST: the address came from the configured resolver (DESIGN §7).
            reader, writer = await asyncio.open_connection(
                address,
                config.smtp_port,
                local_addr=local,
                flags=socket.AI_NUMERICHOST,
                limit=MAX_REPLY_LINE,
            )
    except TimeoutError:
        return _Dial(where, False, None, f"no TCP connection within {connect_s:g} s")
    except ConnectionRefusedError:
        return _Dial(where, False, None, "connection refused")
    except OSError as error:
        return _Dial(where, False, None, error.strerror or str(error))
    try:
        if not config.source_address:
            preflight.learn_outbound(writer.get_extra_info("sockname")[0], "the port-25 socket")
        try:
            async with asyncio.timeout(banner_s):
                code, text = await _read_reply(reader)
        except TimeoutError:
            return _Dial(where, True, None, f"connected, but no greeting within {banner_s:g} s")
        except (OSError, ValueError) as error:
            return _Dial(where, True, None, f"connected, but {error or type(error).__name__}")
        with contextlib.suppress(OSError, TimeoutError, ValueError):
            writer.write(command_line(Verb.QUIT))
            async with asyncio.timeout(QUIT_TIMEOUT_S):
                await _read_reply(reader)  # RFC 5321 §4.1.1.10: the 221, then close
        return _Dial(where, True, code, text)
    finally:
        writer.close()
        with contextlib.suppress(OSError, TimeoutError):
            async with asyncio.timeout(QUIT_TIMEOUT_S):
                await writer.wait_closed()


async def _read_reply(reader: asyncio.StreamReader) -> tuple[int, str]:
    """One SMTP reply (RFC 5321 §4.2.1), bounded like the prober's; ValueError if garbage."""
    texts: list[str] = []
    for _ in range(MAX_REPLY_LINES):
        line = (await reader.readline()).rstrip(b"\r\n")
        if not line:
            raise ValueError("the server closed the connection")
        if len(line) < 3 or not line[:3].isdigit() or line[3:4] not in (b"", b" ", b"-"):
            raise ValueError(f"not an SMTP reply: {line[:40]!r}")
        texts.append(line[4:].decode("utf-8", "replace"))
        if line[3:4] != b"-":
            return int(line[:3]), " ".join(texts)
    raise ValueError(f"a reply longer than {MAX_REPLY_LINES} lines")


# --- (2) HELO name and reverse DNS ---


async def check_helo(preflight: _Preflight) -> _Finding:
    """HELO name -> address -> PTR -> HELO name (forward-confirmed reverse DNS), at our address."""
    helo = _helo(preflight.config)
    if helo is None:
        return _Finding(Outcome.FAIL, "no HELO name is set", SET_IDENTITY)
    if "." not in helo:
        # RFC 5321 §4.1.1.1: the EHLO argument is the client's fully-qualified domain name.
        return _Finding(Outcome.FAIL, f"{helo!r} is not a fully qualified host name", SET_IDENTITY)
    a, aaaa = await asyncio.gather(preflight.ask(helo, TYPE_A), preflight.ask(helo, TYPE_AAAA))
    addresses = [str(record) for record in a.records + aaaa.records]
    ours = preflight.outbound_address
    publish_a = f"publish an A record for {helo} pointing at {ours or 'your public address'}"
    if not addresses:
        failed = next((lookup for lookup in (a, aaaa) if lookup.failed), None)
        if failed is not None:
            return _Finding(
                Outcome.FAIL, f"{helo} could not be resolved: {_failure(failed)}", FIX_DNS_FIRST
            )
        return _Finding(Outcome.FAIL, f"{helo} does not resolve (no A/AAAA)", publish_a)
    set_ptr = "ask whoever owns {address} (hosting provider, ISP) to set its PTR to " + helo
    if ours is None:
        confirmed = [
            address for address in addresses if helo in await _ptr_names(preflight, address)
        ]
        if not confirmed:
            return _Finding(
                Outcome.FAIL,
                f"no address of {helo} ({', '.join(addresses)}) has a PTR back to it",
                set_ptr.format(address=addresses[0]),
            )
        return _Finding(
            Outcome.WARN,
            f"{helo} <-> {confirmed[0]} is forward-confirmed, but our own address is unknown "
            f"({preflight.outbound_note})",
            f"make sure this host sends from {confirmed[0]}, or pass --source-address",
        )
    ptr = await _ptr_lookup(preflight, ours)
    if ptr.failed:
        return _Finding(
            Outcome.FAIL,
            f"the PTR of {ours} could not be read: {_failure(ptr)}",
            set_ptr.format(address=ours),
        )
    names = [str(record) for record in ptr.records]
    if not names:
        return _Finding(
            Outcome.FAIL,
            f"our address {ours} has no reverse DNS (PTR)",
            set_ptr.format(address=ours),
        )
    if helo not in names:
        return _Finding(
            Outcome.FAIL,
            f"the PTR of our address {ours} is {', '.join(names)}, not {helo}",
            f"set the PTR of {ours} to {helo}, or use --helo {names[0]} if it resolves to {ours}",
        )
    if not any(_same_address(address, ours) for address in addresses):
        return _Finding(
            Outcome.FAIL,
            f"{helo} resolves to {', '.join(addresses)}, not to our address {ours}",
            publish_a,
        )
    return _Finding(Outcome.PASS, f"{helo} -> {ours} -> {helo} (forward-confirmed)")


async def _ptr_lookup(preflight: _Preflight, address: str) -> Lookup:
    return await preflight.ask(ipaddress.ip_address(address).reverse_pointer, TYPE_PTR)


async def _ptr_names(preflight: _Preflight, address: str) -> list[str]:
    return [str(record) for record in (await _ptr_lookup(preflight, address)).records]


# --- (3) SPF and DMARC of MAIL FROM's domain ---


async def check_sender_domain(preflight: _Preflight) -> _Finding:
    """MAIL FROM's domain publishes SPF (RFC 7208), and ideally DMARC (RFC 7489)."""
    domain = _mail_from_domain(preflight.config)
    if domain is None:
        return _Finding(Outcome.FAIL, "no MAIL FROM address is set", SET_IDENTITY)
    txt, dmarc = await asyncio.gather(
        preflight.ask(domain, TYPE_TXT), _dmarc_record(preflight, domain)
    )
    ours = preflight.outbound_address
    mechanism = f"ip{ipaddress.ip_address(ours).version}:{ours}" if ours else "ip4:YOUR.IP"
    publish_spf = f'publish TXT "v=spf1 {mechanism} -all" at {domain}'
    if txt.failed:
        return _Finding(
            Outcome.FAIL, f"TXT of {domain} could not be read: {_failure(txt)}", FIX_DNS_FIRST
        )
    spf = [str(text) for text in txt.records if is_spf_record(str(text))]
    if not spf:
        return _Finding(Outcome.FAIL, f"{domain} publishes no SPF record", publish_spf)
    if len(spf) > 1:
        # RFC 7208 §4.5: more than one record is a permerror; receivers treat SPF as broken.
        return _Finding(
            Outcome.FAIL, f"{domain} publishes {len(spf)} SPF records", "merge them into one"
        )
    found = f"SPF {_short(spf[0])}"
    if dmarc is None:
        return _Finding(
            Outcome.WARN,
            f"{found}; no DMARC record at {DMARC_LABEL}.{domain}",
            f'publish TXT "v=DMARC1; p=none" at {DMARC_LABEL}.{domain}',
        )
    return _Finding(Outcome.PASS, f"{found}; DMARC {_short(dmarc)}")


async def _dmarc_record(preflight: _Preflight, domain: str) -> str | None:
    """The DMARC record of `domain`, else of its organisational domain (RFC 7489 §6.6.3)."""
    candidates = [domain]
    organisational = _public_suffixes().privatesuffix(domain)
    if organisational and organisational != domain:
        candidates.append(organisational)
    for candidate in candidates:
        lookup = await preflight.ask(f"{DMARC_LABEL}.{candidate}", TYPE_TXT)
        records = [str(text) for text in lookup.records if is_dmarc_record(str(text))]
        if len(records) == 1:  # RFC 7489 §6.6.3: several records count as none
            return records[0]
    return None


# --- (4) DNS blocklists ---


async def check_blocklists(preflight: _Preflight) -> _Finding:
    """Our address on the blocklists the user names; off unless asked (their terms of use)."""
    if not preflight.dnsbl_zones:
        return _Finding(
            Outcome.SKIP,
            "off: public blocklists forbid commercial queries without a key",
            "pass --dnsbl ZONE for a blocklist whose terms allow your use",
        )
    ours = preflight.outbound_address
    if ours is None:
        return _Finding(
            Outcome.WARN,
            f"our address is unknown ({preflight.outbound_note}): nothing to look up",
            "pass --source-address, or make port 25 reachable",
        )
    verdicts = await asyncio.gather(
        *(_listing(preflight, ours, zone) for zone in preflight.dnsbl_zones)
    )
    worst = max(verdicts, key=lambda verdict: SEVERITY[verdict.outcome])
    detail = "; ".join(verdict.detail for verdict in verdicts)
    return _Finding(worst.outcome, f"{ours}: {detail}", worst.fix)


async def _listing(preflight: _Preflight, address: str, zone: str) -> _Finding:
    """RFC 5782 §2.1: A of `<reversed address>.<zone>`; the TXT says why when listed."""
    reversed_address = ipaddress.ip_address(address).reverse_pointer
    for suffix in REVERSE_SUFFIXES:
        reversed_address = reversed_address.removesuffix(suffix)
    query = f"{reversed_address}.{zone}"
    a, txt = await asyncio.gather(preflight.ask(query, TYPE_A), preflight.ask(query, TYPE_TXT))
    if a.failed:
        return _Finding(Outcome.WARN, f"{zone} did not answer ({_failure(a)})", "try again later")
    answers = [ipaddress.ip_address(str(record)) for record in a.records]
    if not answers:
        return _Finding(Outcome.PASS, f"not on {zone}")
    shown = ", ".join(str(answer) for answer in answers)
    if any(answer in DNSBL_REFUSED for answer in answers):
        return _Finding(
            Outcome.WARN,
            f"{zone} refused the query ({shown})",
            "blocklist refused the query: ask through your own resolver or a keyed zone",
        )
    if any(answer in DNSBL_LISTED for answer in answers):
        reason = f": {_short(str(txt.records[0]))}" if txt.records else ""
        return _Finding(
            Outcome.FAIL,
            f"listed on {zone} ({shown}){reason}",
            f"find why at {zone}'s operator, fix the cause, then request delisting",
        )
    return _Finding(
        Outcome.WARN,
        f"{zone} answered {shown}, which is no blocklist answer (a resolver rewriting NXDOMAIN?)",
        "use a resolver that does not rewrite answers",
    )


CHECKS: Final[tuple[tuple[str, _Check], ...]] = (
    ("DNS servers", check_dns_servers),
    ("outbound SMTP port", check_port_25),
    ("HELO name and reverse DNS", check_helo),
    ("MAIL FROM domain SPF / DMARC", check_sender_domain),
    ("DNS blocklists", check_blocklists),
)


# --- helpers ---


async def _addresses(preflight: _Preflight, host: str) -> list[str]:
    a, aaaa = await asyncio.gather(preflight.ask(host, TYPE_A), preflight.ask(host, TYPE_AAAA))
    return [str(record) for record in a.records + aaaa.records]


def _without_dns(problem: str) -> list[CheckResult]:
    """No resolver to ask: the DNS check fails and every other check has nothing to go on."""
    results = [CheckResult(CHECKS[0][0], Outcome.FAIL, problem, "pass --dns HOST[:PORT]")]
    results += [CheckResult(name, Outcome.SKIP, "needs a DNS resolver") for name, _ in CHECKS[1:]]
    return results


@functools.cache
def _public_suffixes() -> PublicSuffixList:
    return PublicSuffixList()


def _helo(config: Config) -> str | None:
    return config.helo.strip().rstrip(".").lower() if config.helo and config.helo.strip() else None


def _mail_from_domain(config: Config) -> str | None:
    if not config.mail_from or "@" not in config.mail_from:
        return None
    return _domain_name(config.mail_from.rpartition("@")[2]) or None


def _domain_name(text: str) -> str:
    """The A-label form DNS is asked in (IDNA 2008, as prepare.py converts list domains)."""
    name = text.strip().rstrip(".")
    try:
        return idna.encode(name, uts46=True).decode("ascii")
    except idna.IDNAError:
        return name.lower()


def _option_name(option: str, text: str) -> str:
    """A domain the user named, checked before anything is asked (a one-line usage error)."""
    name = _domain_name(text)
    try:
        wire_name(name)
    except ValueError as error:
        raise InputError(f"{option} {text!r}: {error}") from None
    return name


def _same_address(first: str, second: str) -> bool:
    return ipaddress.ip_address(first) == ipaddress.ip_address(second)


def _failure(lookup: Lookup) -> str:
    return lookup.error or lookup.status.value


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= DETAIL_TEXT_LIMIT else text[: DETAIL_TEXT_LIMIT - 1] + "…"


def _connect_timeout_s(config: Config) -> float:
    return min(config.smtp_connect_timeout_s, CONNECT_TIMEOUT_CAP_S)


def _banner_s(config: Config) -> float:
    return min(config.smtp_command_timeout_s, BANNER_TIMEOUT_CAP_S)
