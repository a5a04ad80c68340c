"""Facts about the CIDRs a user allows, shared by every target's firewall rules and warnings."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

IP_VERSIONS = (4, 6)


def is_ip_address(host: str) -> bool:
    """Whether `host` is an IP address (else a DNS name): certificates name the two apart."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def ip_version(cidr: str) -> int:
    return ipaddress.ip_network(cidr).version


def by_ip_family(cidrs: Iterable[str]) -> dict[int, list[str]]:
    """The CIDRs split by IP version, in order: GCP firewalls and AWS rules take one family at a time."""
    families: dict[int, list[str]] = {version: [] for version in IP_VERSIONS}
    for cidr in cidrs:
        families[ip_version(cidr)].append(cidr)
    return families


def wholly_open_families(cidrs: Iterable[str]) -> set[int]:
    """The IP versions whose every address the CIDRs together admit (0.0.0.0/1 + 128.0.0.0/1 too)."""
    open_families = set()
    for version, members in by_ip_family(cidrs).items():
        whole = ipaddress.ip_network("0.0.0.0/0" if version == 4 else "::/0")
        if whole in ipaddress.collapse_addresses(ipaddress.ip_network(c) for c in members):
            open_families.add(version)
    return open_families


def covers_a_whole_family(cidrs: Iterable[str]) -> bool:
    """True when the CIDRs together admit every IPv4 or every IPv6 address."""
    return bool(wholly_open_families(cidrs))
