"""Whether an MX host's address is one a mail server on the internet can be reached at.

An MX that resolves only to private, loopback, documentation or otherwise special-purpose
addresses (RFC 6890 and its registries) cannot receive mail from the internet: the domain is
`unroutable_ip_address`. The table is spelled out here, with each range's source, instead of
relying on `ipaddress.is_global`, whose answer changed between Python releases.

The sandbox mail world lives on 127.0.0.0/8, so loopback is the one special range a caller may
allow (`allow_loopback`); every other special range stays unroutable even there.
"""

from __future__ import annotations

import ipaddress
from typing import Final

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

LOOPBACK_NETWORKS: Final[tuple[IPNetwork, ...]] = (
    ipaddress.ip_network("127.0.0.0/8"),  # RFC 1122 §3.2.1.3
    ipaddress.ip_network("::1/128"),  # RFC 4291 §2.5.3
)

# RFC 6890 §2.2.2 (IPv4) and §2.2.3 (IPv6) with the IANA special-purpose registries as updated
# since: every block whose "globally reachable" is False, plus multicast and the deprecated
# ranges a mail server can never sit in. Loopback is kept apart above.
SPECIAL_PURPOSE_NETWORKS: Final[tuple[tuple[IPNetwork, str], ...]] = tuple(
    (ipaddress.ip_network(network), source)
    for network, source in (
        ("0.0.0.0/8", "RFC 1122 §3.2.1.3: this host on this network"),
        ("10.0.0.0/8", "RFC 1918: private"),
        ("100.64.0.0/10", "RFC 6598: shared address space (carrier-grade NAT)"),
        ("169.254.0.0/16", "RFC 3927: link local"),
        ("172.16.0.0/12", "RFC 1918: private"),
        ("192.0.0.0/24", "RFC 6890 §2.2.2: IETF protocol assignments"),
        ("192.0.2.0/24", "RFC 5737: documentation (TEST-NET-1)"),
        ("192.88.99.0/24", "RFC 7526: deprecated 6to4 relay anycast"),
        ("192.168.0.0/16", "RFC 1918: private"),
        ("198.18.0.0/15", "RFC 2544: benchmarking"),
        ("198.51.100.0/24", "RFC 5737: documentation (TEST-NET-2)"),
        ("203.0.113.0/24", "RFC 5737: documentation (TEST-NET-3)"),
        ("224.0.0.0/4", "RFC 5771: multicast"),
        ("240.0.0.0/4", "RFC 1112 §4: reserved, and 255.255.255.255 limited broadcast"),
        ("::/128", "RFC 4291 §2.5.2: unspecified"),
        ("64:ff9b:1::/48", "RFC 8215: local-use IPv4/IPv6 translation"),
        ("100::/64", "RFC 6666: discard only"),
        ("2001::/23", "RFC 2928: IETF protocol assignments (Teredo, benchmarking, ORCHID)"),
        ("2001:db8::/32", "RFC 3849: documentation"),
        ("3fff::/20", "RFC 9637: documentation"),
        ("5f00::/16", "RFC 9602: segment routing SIDs"),
        ("fc00::/7", "RFC 4193: unique local"),
        ("fe80::/10", "RFC 4291 §2.5.6: link local"),
        ("fec0::/10", "RFC 3879: deprecated site local"),
        ("ff00::/8", "RFC 4291 §2.7: multicast"),
    )
)

# RFC 4291 §2.5.5.2: an IPv4-mapped IPv6 address is the IPv4 host it embeds.
IPV4_MAPPED: Final = ipaddress.ip_network("::ffff:0:0/96")


def special_purpose_of(address: str, *, allow_loopback: bool) -> str | None:
    """Why `address` cannot receive mail from the internet (its range's source), or None."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return "not an IP address"
    if isinstance(ip, ipaddress.IPv6Address) and ip in IPV4_MAPPED and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    for network in LOOPBACK_NETWORKS:
        if ip.version == network.version and ip in network:
            return None if allow_loopback else "RFC 1122 §3.2.1.3 / RFC 4291 §2.5.3: loopback"
    for network, source in SPECIAL_PURPOSE_NETWORKS:
        if ip.version == network.version and ip in network:
            return source
    return None


def is_routable(address: str, *, allow_loopback: bool) -> bool:
    """Whether an MX host at `address` can be reached from the internet (or the sandbox)."""
    return special_purpose_of(address, allow_loopback=allow_loopback) is None
