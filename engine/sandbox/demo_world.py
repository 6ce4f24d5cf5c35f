"""The demo's mail world (a few hundred domains covering every sandbox behaviour) and a list
of addresses over it, both deterministic for a seed.

The list carries a `sandbox_truth` column: what the world really holds for each address, which
is what the best possible verifier could learn. The demo can print it beside the verdicts and
tests can check verdicts against it; `write_demo_list` leaves it out unless asked.

Company domains live under `.example` (RFC 2606). The consumer and disposable domains carry
their real names, because the reference data (free providers, disposable lists, provider MX
patterns) only recognises real names; they resolve, to loopback, only through the sandbox DNS.
"""

from __future__ import annotations

import dataclasses
import functools
import random
from collections import defaultdict
from collections.abc import Sequence
from enum import StrEnum
from pathlib import Path
from typing import Final

import polars as pl

from engine.sandbox.world import (
    NULL_MX,
    Behaviour,
    DnsFault,
    Domain,
    Greylist,
    MailServer,
    Mx,
    RateLimit,
    World,
    reverse_name,
)

DEMO_SEED: Final = 7
DEMO_ROWS: Final = 20_000
DUPLICATE_SHARE: Final = 0.05
BROKEN_SHARE: Final = 0.02
# Round trips that look like the internet's (DESIGN §8); the slow server is far beyond them.
SERVER_LATENCY_RANGE_S: Final = (0.02, 0.1)
SLOW_SERVER_LATENCY_S: Final = 0.8
DNS_LATENCY_S: Final = 0.02
GREYLIST_DELAY_S: Final = 3.0

FIRST_NAMES: Final = (
    "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy",
    "mallory", "niaj", "olivia", "peggy", "rupert", "sybil", "trent", "victor", "walter", "zoe",
    "amir", "bianca", "chen", "dmitri", "elena", "farah", "goran", "hana", "ines", "jonas",
)  # fmt: skip
LAST_NAMES: Final = (
    "smith", "jones", "garcia", "miller", "davis", "martin", "lopez", "wilson", "moore", "taylor",
    "anderson", "thomas", "jackson", "white", "harris", "clark", "lewis", "walker", "young", "king",
    "novak", "kowalski", "tanaka", "silva", "rossi", "muller", "dubois", "jensen", "haddad", "kim",
)  # fmt: skip
COMPANY_WORDS: Final = (
    "acme", "globex", "initech", "umbrella", "hooli", "vandelay", "stark", "wayne", "wonka",
    "tyrell", "cyberdyne", "soylent", "aperture", "oscorp", "dunder", "monarch", "piedpiper",
    "gekko", "nakatomi", "wernham", "bluth", "prestige", "sterling", "duff", "krusty",
)  # fmt: skip
ROLE_LOCAL_PARTS: Final = ("info", "support", "sales", "admin", "billing", "hr", "office")
DISPOSABLE_DOMAINS: Final = (
    "mailinator.com", "guerrillamail.com", "10minutemail.com", "yopmail.com",
    "trashmail.com", "sharklasers.com", "maildrop.cc", "dispostable.com",
)  # fmt: skip
TYPO_DOMAINS: Final = ("gmial.com", "hotmial.com", "yaho.com", "gmail.con", "outlok.com")
BROKEN_CELLS: Final = (
    "",
    "no-at-sign.example",
    "two@@ats.example",
    "trailing.dot.@acme1.example",
    "double..dot@globex2.example",
    "spaces in@initech3.example",
    "=cmd|' /C calc'!A0",
    "a" * 1000 + "@acme4.example",
)
# Reserved ranges (RFC 1918 private, RFC 5737 documentation) an MX may wrongly point at; the
# sandbox only returns them in answers, nothing ever connects there.
UNROUTABLE_MX_ADDRESSES: Final = ("10.0.0.1", "192.168.1.1", "172.16.0.1", "192.0.2.1")
# Consumer mailbox providers: MX host (named as on the internet, so the provider table in
# engine/data/mx_providers.csv recognises it), its domains, people per domain, server options.
CONSUMER_PROVIDERS: Final[tuple[tuple[str, tuple[str, ...], int, dict[str, object]], ...]] = (
    ("gmail-smtp-in.l.google.com", ("gmail.com", "googlemail.com"), 1500, {"multiline": True}),
    ("hotmail-com.olc.protection.outlook.com", ("outlook.com", "hotmail.com", "live.com"), 400, {}),
    ("mx00.gmx.net", ("gmx.de", "web.de"), 200, {"smtputf8": False}),
    ("mx01.mail.icloud.com", ("icloud.com", "me.com"), 200, {"smtputf8": False}),
)
SPF_RECORD: Final = "v=spf1 mx -all"
DMARC_RECORD: Final = "v=DMARC1; p=quarantine; rua=mailto:dmarc@{domain}"
# The sandbox verifier's own identity (HELO name and MAIL FROM domain, probe_settings.py): its
# address (the source of every loopback connection) has forward-confirmed reverse DNS and its
# domain SPF and DMARC, so `mailsift doctor --sandbox` meets a healthy setup.
VERIFIER_DOMAIN: Final = "verifier.mailsift.test"
VERIFIER_ADDRESS: Final = "127.0.0.1"
VERIFIER_MX: Final = "mx1.hosting-1.example"


class Truth(StrEnum):
    """What the world holds for an address: the best a verifier could possibly learn."""

    MAILBOX_EXISTS = "mailbox_exists"
    NO_SUCH_USER = "no_such_user"
    ROLE_MAILBOX = "role_mailbox"
    CATCH_ALL = "catch_all"
    ACCEPTS_ALL_PROVIDER = "accepts_all_provider"
    DISPOSABLE = "disposable"
    GREYLISTED_MAILBOX = "greylisted_mailbox"
    GREYLISTED_NO_SUCH_USER = "greylisted_no_such_user"
    MAILBOX_FULL_TEMPORARY = "mailbox_full_temporary"
    MAILBOX_FULL_PERMANENT = "mailbox_full_permanent"
    MAILBOX_DISABLED = "mailbox_disabled"
    POLICY_BLOCK = "policy_block"
    IP_BLAMED = "ip_blamed"
    RATE_LIMITED_MAILBOX = "rate_limited_mailbox"
    NO_PIPELINING_MAILBOX = "no_pipelining_mailbox"
    FEW_RCPTS_MAILBOX = "few_rcpts_mailbox"
    FAILOVER_MAILBOX = "failover_mailbox"
    IMPLICIT_MX_MAILBOX = "implicit_mx_mailbox"
    SLOW_MAILBOX = "slow_mailbox"
    SERVER_BUSY = "server_busy"
    TARPIT = "tarpit"
    CONNECTION_REFUSED = "connection_refused"
    CONNECTION_RESET = "connection_reset"
    GARBAGE_REPLY = "garbage_reply"
    ACCEPT_THEN_CLOSE = "accept_then_close"
    HOSTILE_REPLY = "hostile_reply"
    NULL_MX = "null_mx"
    MX_UNRESOLVABLE = "mx_unresolvable"
    MX_PRIVATE_ADDRESS = "mx_private_address"
    NO_SUCH_DOMAIN = "no_such_domain"
    DNS_SERVFAIL = "dns_servfail"
    DNS_TIMEOUT = "dns_timeout"
    BROKEN_SYNTAX = "broken_syntax"


# Share of the list's fresh rows per truth (duplicates and broken cells come on top).
LIST_MIX: Final[dict[Truth, float]] = {
    Truth.MAILBOX_EXISTS: 0.46,
    Truth.NO_SUCH_USER: 0.10,
    Truth.ROLE_MAILBOX: 0.03,
    Truth.CATCH_ALL: 0.07,
    Truth.ACCEPTS_ALL_PROVIDER: 0.04,
    Truth.DISPOSABLE: 0.025,
    Truth.GREYLISTED_MAILBOX: 0.025,
    Truth.GREYLISTED_NO_SUCH_USER: 0.01,
    Truth.MAILBOX_FULL_TEMPORARY: 0.01,
    Truth.MAILBOX_FULL_PERMANENT: 0.008,
    Truth.MAILBOX_DISABLED: 0.01,
    Truth.POLICY_BLOCK: 0.015,
    Truth.IP_BLAMED: 0.012,
    Truth.RATE_LIMITED_MAILBOX: 0.01,
    Truth.NO_PIPELINING_MAILBOX: 0.01,
    Truth.FEW_RCPTS_MAILBOX: 0.01,
    Truth.FAILOVER_MAILBOX: 0.008,
    Truth.IMPLICIT_MX_MAILBOX: 0.008,
    Truth.SLOW_MAILBOX: 0.008,
    Truth.SERVER_BUSY: 0.005,
    Truth.TARPIT: 0.003,
    Truth.CONNECTION_REFUSED: 0.004,
    Truth.CONNECTION_RESET: 0.005,
    Truth.GARBAGE_REPLY: 0.004,
    Truth.ACCEPT_THEN_CLOSE: 0.003,
    Truth.HOSTILE_REPLY: 0.002,
    Truth.NULL_MX: 0.006,
    Truth.MX_UNRESOLVABLE: 0.006,
    Truth.MX_PRIVATE_ADDRESS: 0.005,
    Truth.NO_SUCH_DOMAIN: 0.012,
    Truth.DNS_SERVFAIL: 0.004,
    Truth.DNS_TIMEOUT: 0.003,
}


# Servers that never give a usable answer: (truth, behaviour, how many domains use them).
# RESET_AFTER_RCPT resets at the first RCPT here, so no address there ever gets an answer.
MISBEHAVING_SERVERS: Final = (
    (Truth.SERVER_BUSY, Behaviour.BUSY, 3),
    (Truth.TARPIT, Behaviour.TARPIT, 2),
    (Truth.CONNECTION_REFUSED, Behaviour.REFUSED, 3),
    (Truth.CONNECTION_RESET, Behaviour.RESET_AFTER_MAIL, 2),
    (Truth.CONNECTION_RESET, Behaviour.RESET_AFTER_RCPT, 2),
    (Truth.GARBAGE_REPLY, Behaviour.HTTP_BANNER, 2),
    (Truth.GARBAGE_REPLY, Behaviour.BINARY_GARBAGE, 2),
    (Truth.ACCEPT_THEN_CLOSE, Behaviour.ACCEPT_THEN_CLOSE, 2),
)
HOSTILE_SERVERS: Final = (
    (Truth.HOSTILE_REPLY, Behaviour.ENDLESS_MULTILINE, 1),
    (Truth.HOSTILE_REPLY, Behaviour.HUGE_LINE, 1),
    (Truth.TARPIT, Behaviour.TRICKLE, 1),  # a greeting that never ends: a timeout, like a tarpit
)


@dataclasses.dataclass
class _ServerDraft:
    """A mail server being planned: mailboxes are added domain by domain."""

    name: str
    behaviour: Behaviour = Behaviour.STRICT
    options: dict[str, object] = dataclasses.field(default_factory=dict)
    mailboxes: set[str] = dataclasses.field(default_factory=lambda: {"postmaster"})
    full_temporary: set[str] = dataclasses.field(default_factory=set)
    full_permanent: set[str] = dataclasses.field(default_factory=set)
    disabled: set[str] = dataclasses.field(default_factory=set)

    def build(self, latency_s: float) -> MailServer:
        options = {"latency_s": latency_s} | self.options
        return MailServer(
            self.name,
            self.behaviour,
            mailboxes=self.mailboxes,
            full_temporary=self.full_temporary,
            full_permanent=self.full_permanent,
            disabled=self.disabled,
            **options,  # type: ignore[arg-type]
        )


@dataclasses.dataclass(frozen=True)
class _Pool:
    """Where a truth's addresses come from: existing mailboxes, or made-up users at domains."""

    addresses: tuple[str, ...] = ()
    domains: tuple[str, ...] = ()


class _Planner:
    """Lays out the demo world; every choice comes from one seeded random generator."""

    def __init__(self, seed: int, *, hostile: bool) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        self.drafts: dict[str, _ServerDraft] = {}
        self.domains: list[Domain] = []
        self.addresses: defaultdict[Truth, list[str]] = defaultdict(list)
        self.pool_domains: defaultdict[Truth, list[str]] = defaultdict(list)
        self._company_serial = 0
        self._plan(hostile=hostile)

    # --- building blocks ---

    def server(self, name: str, behaviour: Behaviour = Behaviour.STRICT, **options: object) -> str:
        self.drafts[name] = _ServerDraft(name, behaviour, dict(options))
        return name

    def company(self) -> str:
        self._company_serial += 1
        word = COMPANY_WORDS[self._company_serial % len(COMPANY_WORDS)]
        return f"{word}{self._company_serial}.example"

    def mail_domain(self, name: str, mx: Sequence[str | Mx] = (), **records: object) -> str:
        authenticated = self.rng.random() < 0.7  # most real domains publish SPF and DMARC
        defaults: dict[str, object] = {}
        if authenticated:
            defaults = {"spf": SPF_RECORD, "dmarc": DMARC_RECORD.format(domain=name)}
        self.domains.append(Domain(name, mx=mx, **(defaults | records)))  # type: ignore[arg-type]
        return name

    def people(self, draft: _ServerDraft, domain: str, count: int, truth: Truth) -> None:
        """Mailboxes at `domain`, plus the odd full or disabled one, filed under their truths."""
        for local in self._local_parts(count):
            address = f"{local}@{domain}"
            # Full and disabled mailboxes only where nothing else answers first (greylisting, a
            # rate limit), so that their truth is what a probe meets.
            draw = self.rng.random() if truth is Truth.MAILBOX_EXISTS else 1.0
            if draw < 0.025:
                draft.full_temporary.add(address)
                self.addresses[Truth.MAILBOX_FULL_TEMPORARY].append(address)
            elif draw < 0.045:
                draft.full_permanent.add(address)
                self.addresses[Truth.MAILBOX_FULL_PERMANENT].append(address)
            elif draw < 0.07:
                draft.disabled.add(address)
                self.addresses[Truth.MAILBOX_DISABLED].append(address)
            else:
                draft.mailboxes.add(address)
                self.addresses[truth].append(address)

    def roles(self, draft: _ServerDraft, domain: str) -> None:
        for role in self.rng.sample(ROLE_LOCAL_PARTS, 5):
            draft.mailboxes.add(f"{role}@{domain}")
            self.addresses[Truth.ROLE_MAILBOX].append(f"{role}@{domain}")

    def _local_parts(self, count: int) -> list[str]:
        # Existing users are "first.last" or "first.last<1-9>"; made-up unknown users get three
        # digits (see `_made_up_address`), so the two can never collide.
        seen: set[str] = set()
        while len(seen) < count:
            first, last = self.rng.choice(FIRST_NAMES), self.rng.choice(LAST_NAMES)
            style = self.rng.random()
            if style < 0.5:
                local = f"{first}.{last}"
            elif style < 0.8:
                local = f"{first}.{last}{self.rng.randint(1, 9)}"
            else:
                local = f"{first[0]}{last}{self.rng.randint(1, 9)}"
            seen.add(local)
        return sorted(seen)

    def hosted(
        self,
        server: str,
        domains: int,
        truth: Truth,
        *,
        people: tuple[int, int] = (10, 60),
        unknown_truth: Truth | None = None,
        roles: bool = False,
    ) -> None:
        """Company domains whose MX is `server`, with their people."""
        draft = self.drafts[server]
        for _ in range(domains):
            domain = self.mail_domain(self.company(), mx=[server])
            self.people(draft, domain, self.rng.randint(*people), truth)
            if roles:
                self.roles(draft, domain)
            if unknown_truth is not None:
                self.pool_domains[unknown_truth].append(domain)

    def dead_end(self, truth: Truth, server: str, domains: int) -> None:
        """Domains whose only MX misbehaves: any user there tells the same story."""
        for _ in range(domains):
            self.pool_domains[truth].append(self.mail_domain(self.company(), mx=[server]))

    # --- the world ---

    def _plan(self, *, hostile: bool) -> None:
        self._consumer_providers()
        self._hosted_companies()
        self._misbehaving_servers(MISBEHAVING_SERVERS)
        self._dns_cases()
        if hostile:  # last, so the calm world is the same with or without them
            self._misbehaving_servers(HOSTILE_SERVERS)

    def _consumer_providers(self) -> None:
        for host, domains, people, options in CONSUMER_PROVIDERS:
            self.server(host, **options)
            for domain in domains:
                self.mail_domain(domain, mx=[host])
                self.people(self.drafts[host], domain, people, Truth.MAILBOX_EXISTS)
                self.pool_domains[Truth.NO_SUCH_USER].append(domain)
        # Yahoo and AOL answer 250 to every RCPT and bounce later (engine/data/mx_providers.csv).
        yahoo = self.server("mta5.am0.yahoodns.net", Behaviour.CATCH_ALL)
        for domain in ("yahoo.com", "aol.com", "ymail.com"):
            self.pool_domains[Truth.ACCEPTS_ALL_PROVIDER].append(
                self.mail_domain(domain, mx=[yahoo])
            )
        disposable = self.server("mail.mailinator.com", Behaviour.CATCH_ALL)
        for domain in DISPOSABLE_DOMAINS:
            self.pool_domains[Truth.DISPOSABLE].append(self.mail_domain(domain, mx=[disposable]))

    def _hosted_companies(self) -> None:
        # Google Workspace hosts the largest share of company domains, as on the internet.
        workspace = self.server("aspmx.l.google.com", multiline=True)
        self.hosted(
            workspace, 60, Truth.MAILBOX_EXISTS, unknown_truth=Truth.NO_SUCH_USER, roles=True
        )
        for index in range(10):
            tenant = self.company()
            host = f"{tenant.replace('.', '-')}.mail.protection.outlook.com"
            if index == 0:
                # Microsoft often blames the sender's IP (5.7.x): no evidence about the mailbox.
                self.server(host, Behaviour.BLAME_IP_AT_RCPT)
                self.pool_domains[Truth.IP_BLAMED].append(self.mail_domain(tenant, mx=[host]))
                continue
            self.server(host)
            self.mail_domain(tenant, mx=[host])
            self.people(self.drafts[host], tenant, self.rng.randint(10, 60), Truth.MAILBOX_EXISTS)
            self.pool_domains[Truth.NO_SUCH_USER].append(tenant)
        for index in range(6):
            host = self.server(f"mx{index + 1}.hosting-{index + 1}.example")
            self.hosted(
                host, 15, Truth.MAILBOX_EXISTS, unknown_truth=Truth.NO_SUCH_USER, roles=True
            )
        for index in range(3):
            host = self.server(f"mx.catchall-{index + 1}.example", Behaviour.CATCH_ALL)
            self.hosted(host, 10, Truth.CATCH_ALL, unknown_truth=Truth.CATCH_ALL)
        for index in range(2):
            host = self.server(
                f"mx.greylist-{index + 1}.example", greylist=Greylist(GREYLIST_DELAY_S, 450 + index)
            )
            self.hosted(
                host, 8, Truth.GREYLISTED_MAILBOX, unknown_truth=Truth.GREYLISTED_NO_SUCH_USER
            )
        limited = self.server(
            "mx.ratelimited.example",
            rate_limit=RateLimit(sessions=30, rcpts=120, concurrent=2, window_s=60.0),
        )
        self.hosted(limited, 8, Truth.RATE_LIMITED_MAILBOX)
        old = self.server(
            "mail.oldschool.example", pipelining=False, smtputf8=False, multiline=True
        )
        self.hosted(old, 5, Truth.NO_PIPELINING_MAILBOX, people=(40, 80))
        few = self.server("mx.fewrcpts.example", max_rcpt=5)
        self.hosted(few, 5, Truth.FEW_RCPTS_MAILBOX, people=(40, 80))
        slow = self.server("mx.slow.example", latency_s=SLOW_SERVER_LATENCY_S)
        self.hosted(slow, 3, Truth.SLOW_MAILBOX, people=(70, 90))
        # The primary MX refuses connections; the secondary answers (RFC 5321 §5.1 failover).
        primary = self.server("mx0.failover.example", Behaviour.REFUSED)
        secondary = self.server("mx1.failover.example")
        for _ in range(3):
            domain = self.mail_domain(self.company(), mx=[Mx(primary, 10), Mx(secondary, 20)])
            self.people(self.drafts[secondary], domain, 80, Truth.FAILOVER_MAILBOX)
        # Implicit MX (RFC 5321 §5.1): no MX record, the domain's own A record is the server.
        for _ in range(3):
            domain = self.company()
            self.server(domain)
            self.mail_domain(domain)
            self.people(self.drafts[domain], domain, 80, Truth.IMPLICIT_MX_MAILBOX)
        policy = self.server("mx.policy-block.example", Behaviour.POLICY_BLOCK)
        self.dead_end(Truth.POLICY_BLOCK, policy, 6)
        blamed = self.server("mx.blocklist.example", Behaviour.BLAME_IP_AT_BANNER)
        self.dead_end(Truth.IP_BLAMED, blamed, 4)

    def _misbehaving_servers(self, cases: Sequence[tuple[Truth, Behaviour, int]]) -> None:
        for truth, behaviour, domains in cases:
            host = self.server(f"mx.{behaviour.value.replace('_', '-')}.example", behaviour)
            self.dead_end(truth, host, domains)

    def _dns_cases(self) -> None:
        for _ in range(4):
            self.pool_domains[Truth.NULL_MX].append(self.mail_domain(self.company(), mx=NULL_MX))
        for _ in range(4):
            domain = self.company()
            self.mail_domain(domain, mx=[f"mx.gone.{domain}"])  # the MX host is not in the world
            self.pool_domains[Truth.MX_UNRESOLVABLE].append(domain)
        for address in UNROUTABLE_MX_ADDRESSES:
            domain = self.company()
            self.mail_domain(domain, mx=[f"mx.{domain}"])
            self.domains.append(Domain(f"mx.{domain}", a=(address,)))
            self.pool_domains[Truth.MX_PRIVATE_ADDRESS].append(domain)
        for truth, fault, count in (
            (Truth.DNS_SERVFAIL, DnsFault.SERVFAIL, 3),
            (Truth.DNS_TIMEOUT, DnsFault.TIMEOUT, 2),
        ):
            for _ in range(count):
                domain = self.company()
                self.domains.append(Domain(domain, fault=fault))
                self.pool_domains[truth].append(domain)
        self.pool_domains[Truth.NO_SUCH_DOMAIN].extend(TYPO_DOMAINS)
        self.pool_domains[Truth.NO_SUCH_DOMAIN].extend(f"gone{index}.example" for index in range(5))

    # --- results ---

    def world(self, *, server_latency_s: tuple[float, float], dns_latency_s: float) -> World:
        latency = random.Random(self.seed * 31 + 1)
        servers = [
            draft.build(round(latency.uniform(*server_latency_s), 3))
            for draft in self.drafts.values()
        ]
        domains = [*self.domains, *_verifier_identity()]
        return World(servers=servers, domains=domains, dns_latency_s=dns_latency_s)

    def pools(self) -> dict[Truth, _Pool]:
        return {
            truth: _Pool(
                tuple(self.addresses.get(truth, ())), tuple(self.pool_domains.get(truth, ()))
            )
            for truth in LIST_MIX
        }


def _verifier_identity() -> tuple[Domain, ...]:
    return (
        Domain(
            VERIFIER_DOMAIN,
            mx=[VERIFIER_MX],
            a=[VERIFIER_ADDRESS],
            spf=f"v=spf1 ip4:{VERIFIER_ADDRESS} -all",
            dmarc=DMARC_RECORD.format(domain=VERIFIER_DOMAIN),
        ),
        Domain(reverse_name(VERIFIER_ADDRESS), ptr=[VERIFIER_DOMAIN]),
    )


@functools.lru_cache(maxsize=4)
def _planner(seed: int, hostile: bool) -> _Planner:
    return _Planner(seed, hostile=hostile)


def demo_world(
    seed: int = DEMO_SEED,
    *,
    hostile: bool = False,
    server_latency_s: tuple[float, float] = SERVER_LATENCY_RANGE_S,
    dns_latency_s: float = DNS_LATENCY_S,
) -> World:
    """The demo's world. `hostile` adds the endless-reply and 10 MB-line servers of issue 6;
    latencies of (0, 0) and 0 make it answer as fast as loopback allows (for tests), all but
    the one slow server, whose slowness is its behaviour."""
    return _planner(seed, hostile).world(
        server_latency_s=server_latency_s, dns_latency_s=dns_latency_s
    )


def demo_list(
    rows: int = DEMO_ROWS, seed: int = DEMO_SEED, *, hostile: bool = False
) -> pl.DataFrame:
    """`email, first_name, last_name, sandbox_truth` rows over `demo_world(seed, hostile=...)`:
    the LIST_MIX of truths, ~5% duplicates (some re-cased) and ~2% broken cells."""
    pools = _planner(seed, hostile).pools()
    truths = [truth for truth in LIST_MIX if pools[truth].addresses or pools[truth].domains]
    weights = [LIST_MIX[truth] for truth in truths]
    rng = random.Random(seed * 7919 + rows)
    unused = {
        truth: rng.sample(pools[truth].addresses, len(pools[truth].addresses)) for truth in truths
    }
    emails: list[str] = []
    labels: list[str] = []
    for _ in range(rows):
        draw = rng.random()
        if emails and draw < DUPLICATE_SHARE:
            index = rng.randrange(len(emails))
            original = emails[index]
            emails.append(original.upper() if rng.random() < 0.3 else original)
            labels.append(labels[index])
            continue
        if draw < DUPLICATE_SHARE + BROKEN_SHARE:
            emails.append(rng.choice(BROKEN_CELLS))
            labels.append(Truth.BROKEN_SYNTAX)
            continue
        truth = rng.choices(truths, weights)[0]
        emails.append(_draw_address(rng, pools[truth], unused[truth]))
        labels.append(truth)
    names = [_name_parts(email) for email in emails]
    return pl.DataFrame(
        {
            "email": emails,
            "first_name": [first for first, _ in names],
            "last_name": [last for _, last in names],
            "sandbox_truth": [str(label) for label in labels],
        }
    )


def write_demo_list(
    path: Path,
    rows: int = DEMO_ROWS,
    seed: int = DEMO_SEED,
    *,
    hostile: bool = False,
    with_truth: bool = False,
) -> Path:
    """Writes `demo_list` as CSV; the `sandbox_truth` column only when `with_truth`.

    An input, not a report: cells are written as they are (the formula among BROKEN_CELLS too),
    since the demo shows that mailsift's results CSV neutralises what a list brings in.
    """
    frame = demo_list(rows, seed, hostile=hostile)
    if not with_truth:
        frame = frame.drop("sandbox_truth")
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.write_csv(path)
    return path


def _draw_address(rng: random.Random, pool: _Pool, unused: list[str]) -> str:
    if pool.addresses:
        # Fresh mailboxes first, so repeats come from the duplicate share, not by chance.
        return unused.pop() if unused else rng.choice(pool.addresses)
    return _made_up_address(rng, rng.choice(pool.domains))


def _made_up_address(rng: random.Random, domain: str) -> str:
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    return f"{first}.{last}{rng.randint(100, 999)}@{domain}"


def _name_parts(email: str) -> tuple[str | None, str | None]:
    local = email.partition("@")[0]
    first, dot, last = local.partition(".")
    if not dot or not first.isalpha():
        return None, None
    return first.title(), last.rstrip("0123456789").title() or None
