"""Which DNS servers a run asks, and whether their world may put mail servers on loopback.

One resolver decides everything (DESIGN §7): the `--dns` servers when given, otherwise the
system's resolv.conf, read the way dnspython reads it.
"""

from __future__ import annotations

import ipaddress
from typing import Final

import dns.asyncresolver
import dns.nameserver
import dns.resolver

from engine.config import Config
from engine.dns_client import Nameserver
from engine.errors import InputError

DEFAULT_DNS_PORT: Final = 53


def configured_resolver(config: Config) -> dns.asyncresolver.Resolver:
    """The one resolver every stage asks: `config.dns` servers, or the system's resolv.conf.

    The DNS stage sends its own messages to these servers (engine/dns_client.py); the resolver
    is where they, the timeout and the lifetime (all tries of one question) are set, and any
    stage that needs a plain dnspython resolver gets the same servers from here.
    """
    if config.sandbox:
        require_loopback_servers(config)
    if config.dns:
        resolver = dns.asyncresolver.Resolver(configure=False)
        resolver.nameservers = [
            dns.nameserver.Do53Nameserver(server.host, server.port)
            for server in (parse_nameserver(entry) for entry in config.dns)
        ]
    else:
        try:
            resolver = dns.asyncresolver.Resolver(configure=True)
        except dns.resolver.NoResolverConfiguration as error:
            raise InputError(
                "no system DNS resolver is configured; pass --dns HOST[:PORT]"
            ) from error
    resolver.timeout = config.dns_timeout_s
    resolver.lifetime = config.dns_timeout_s * (config.dns_retries + 1)
    resolver.retry_servfail = True
    return resolver


def nameservers_of(resolver: dns.resolver.BaseResolver) -> list[Nameserver]:
    """The resolver's servers as (address, port); only plain DNS (Do53) is spoken."""
    servers = []
    for entry in resolver.nameservers:
        if isinstance(entry, str):
            servers.append(Nameserver(entry, resolver.nameserver_ports.get(entry, resolver.port)))
        elif isinstance(entry, dns.nameserver.Do53Nameserver):
            servers.append(Nameserver(entry.address, entry.port))
        else:
            raise InputError(f"DNS server {entry} is not plain DNS over UDP/TCP")
    return servers


def parse_nameserver(entry: str) -> Nameserver:
    """`HOST[:PORT]` as `--dns` takes it: an IPv4 address, or an IPv6 one (in brackets when a
    port follows: `[::1]:5353`); port 53 by default."""
    text = entry.strip()
    host, port_text = text, ""
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        if rest and not rest.startswith(":"):
            raise InputError(f"--dns {entry!r}: expected [IPv6]:PORT")
        port_text = rest[1:]
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    try:
        ipaddress.ip_address(host)
    except ValueError as error:
        raise InputError(f"--dns {entry!r}: the server must be an IP address") from error
    if not port_text:
        return Nameserver(host, DEFAULT_DNS_PORT)
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise InputError(f"--dns {entry!r}: the port must be a number from 1 to 65535")
    return Nameserver(host, int(port_text))


def require_loopback_servers(config: Config) -> None:
    """A sandbox run asks only DNS servers on loopback, so it can never learn (and then probe) the
    real address of a name its world borrows from the internet (gmail.com's MX, say)."""
    servers = [parse_nameserver(entry) for entry in config.dns]
    outside = [server.host for server in servers if not _is_loopback(server.host)]
    if not servers or outside:
        raise InputError(
            "a sandbox run must use the sandbox's DNS server on loopback (--dns 127.x.x.x:PORT)"
            + (f", not {', '.join(outside)}" if outside else "")
        )


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def loopback_mx_allowed(config: Config) -> bool:
    """Whether an MX on 127.0.0.0/8 or ::1 counts as routable: only when asked explicitly.

    The sandbox sets `allow_loopback_mx`; a `--dns 127.0.0.1` alone is not enough, because that
    may be a local caching resolver answering for the real internet, where a loopback MX is a
    misconfiguration and probing it would reach this very machine.
    """
    return config.sandbox or config.allow_loopback_mx
