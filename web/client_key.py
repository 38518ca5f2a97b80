"""Which client an address belongs to: the one key every per-address rule counts.

Rate limits (``web.rate_limit``), daily help quotas (``web.helpdata``), the
help store's client hash that the retraining's per-client caps group by
(``shared.help_store``), and Socket.IO connection caps (``web.socket_caps``)
all count clients by address. An IPv4 address is one client (NAT aside). An
IPv6 subscriber, though, is given a whole /64 (2^64 addresses) and may pick a
fresh address for every request: keyed on the full address, each request
would be a new client with a fresh allowance. So an IPv6 address counts as
its /64 prefix, and an IPv4-mapped IPv6 address (``::ffff:a.b.c.d``, what a
dual-stack socket reports for an IPv4 peer) as the IPv4 address it carries.
Anything that is not an IP address (a Unix socket's empty peer, a test's
made-up name) is its own key; no address at all is ``unknown``.
"""
from __future__ import annotations

import ipaddress

IPV6_CLIENT_PREFIX = 64
UNKNOWN = "unknown"


def client_key(address: str | None) -> str:
    """The key an address is counted under: IPv4 as is, IPv6 by its /64."""
    if not address:
        return UNKNOWN
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])   # drop an IPv6 zone (fe80::1%eth0)
    except ValueError:
        return address
    if ip.version == 4:
        return str(ip)
    if ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ipaddress.IPv6Network((ip, IPV6_CLIENT_PREFIX), strict=False))
