"""Which addresses the server may call on behalf of a URL a person typed (pure, no I/O).

A marketer types webhook addresses; an attacker in that seat would aim them at
the server's own loopback, the office network or the cloud's metadata service.
The policy refuses every address that is not on the public internet:
loopback, private, shared (carrier NAT), link-local (cloud metadata lives
there), multicast, reserved and unspecified, including IPv4 addresses wrapped
in IPv6 (``::ffff:127.0.0.1``, 6to4, NAT64). An operator opens what an
on-premise install needs with ``EGRESS_ALLOW``: host names (``crm.local``,
``.corp.example`` for a whole domain) and addresses or CIDR ranges
(``10.1.2.0/24``).

``refusal(url)`` answers before any name is resolved (literal addresses,
``localhost``); the runtime's egress client (``runtime.egress``) applies
``address_refusal`` to every address a name resolves to, on every redirect
hop, and connects only to the address it checked.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

__all__ = ["EgressPolicy", "IPAddress"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
# Names that always mean this machine, whatever a resolver says.
_LOCAL_NAMES = ("localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback")
_ALLOW_HINT = "an administrator can allow it with the EGRESS_ALLOW setting"


def _embedded_ipv4(address: IPAddress) -> IPAddress:
    """The IPv4 address an IPv6 address carries (mapped, 6to4, NAT64), else itself."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address.sixtofour is not None:
            return address.sixtofour
        if address in _NAT64:
            return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address


def _kind(address: IPAddress) -> str | None:
    """What makes ``address`` off limits, in words, or None for a public address."""
    address = _embedded_ipv4(address)
    if address.is_loopback:
        return "a loopback address (this server itself)"
    if address.is_link_local:
        return "a link-local address (where cloud metadata services live)"
    if address.is_multicast:
        return "a multicast address"
    if address.is_unspecified:
        return "an unspecified address"
    if address.is_private:
        return "a private network address"
    if address.is_reserved or not address.is_global:
        return "a reserved address"
    return None


@dataclass(frozen=True)
class EgressPolicy:
    """The refuse-by-default address policy and the operator's exceptions."""

    hosts: frozenset[str] = frozenset()
    networks: tuple[_Network, ...] = field(default=())

    @classmethod
    def parse(cls, allow: Iterable[str] | str | None) -> EgressPolicy:
        """Read ``EGRESS_ALLOW``: comma-separated host names, addresses and CIDR ranges."""
        items = allow.split(",") if isinstance(allow, str) else list(allow or ())
        hosts: set[str] = set()
        networks: list[_Network] = []
        for raw in items:
            item = raw.strip().lower().strip("[]")
            if not item:
                continue
            try:
                networks.append(ipaddress.ip_network(item, strict=False))
            except ValueError:
                hosts.add(item.rstrip("."))
        return cls(frozenset(hosts), tuple(networks))

    def host_allowed(self, host: str) -> bool:
        host = host.lower().rstrip(".")
        return host in self.hosts or any(
            h.startswith(".") and (host.endswith(h) or host == h[1:]) for h in self.hosts
        )

    def address_refusal(self, host: str, address: IPAddress) -> str | None:
        """Why ``host`` may not be called at ``address`` (after resolving), or None."""
        if self.host_allowed(host) or any(address in net for net in self.networks):
            return None
        unwrapped = _embedded_ipv4(address)
        if unwrapped is not address and any(unwrapped in net for net in self.networks):
            return None
        kind = _kind(address)
        if kind is None:
            return None
        shown = host if host == str(address) else f"{host} ({address})"
        return f"Touchflow does not call {shown}: it is {kind}; {_ALLOW_HINT}."

    def refusal(self, url: str) -> str | None:
        """Why ``url`` cannot be called, judged without resolving names; None if it may be tried.

        Custom nodes call this (``ctx.services.egress.refusal(url)``) to fail the step
        with a clear reason; the egress client checks again after resolving.
        """
        try:
            parts = urlsplit(url.strip())
            host = parts.hostname
            _port = parts.port
        except ValueError:
            return f"{url!r} is not a valid address."
        if parts.scheme not in ("http", "https") or not host:
            return f"{url!r} is not an http:// or https:// address."
        if self.host_allowed(host):
            return None
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            name = host.rstrip(".")
            if name in _LOCAL_NAMES or name.endswith(".localhost"):
                return self.address_refusal(host, ipaddress.IPv4Address("127.0.0.1"))
            return None
        return self.address_refusal(host, address)
