"""Where an admin webhook may be sent: URL checks, address policy, and a pinned connection.

An admin-webhook URL comes from configuration, but what its host resolves to can change at any
time (a DNS record pointed at ``169.254.169.254`` turns the webhook into a way to read cloud
credentials). So the address policy is enforced three times:

1. At configuration time, :func:`validate_webhook_url` checks the syntax: ``http``/``https``, a
   host, no fragment. It does no DNS lookup (``init_app`` must not block or depend on DNS).
2. At delivery time, before anything is sent, :func:`check_target` resolves the host and refuses
   it if any address it resolves to is not allowed.
3. At connect time, :func:`guarded_session` opens the socket itself: it resolves, checks every
   address again and connects to the very address it checked, so a DNS answer that changes
   between step 2 and the connection (DNS rebinding) cannot slip through. TLS still verifies
   the certificate against the URL's host name.

Address policy. Always refused: cloud-metadata addresses (``169.254.169.254``,
``fd00:ec2::254``, ``169.254.170.2``, ``100.100.100.200``), multicast, unspecified and reserved
addresses: none of them can be a webhook receiver. Refused unless
``CAMPAIGN_RETRY_ADMIN_WEBHOOK_ALLOW_PRIVATE`` is True: loopback, private (RFC 1918, unique
local), link-local, shared (100.64.0.0/10) and any other address that is not globally
routable. IPv4 addresses embedded in IPv6 ones (mapped, 6to4, Teredo, NAT64) are judged by the
IPv4 address they carry.

Requests sent through :func:`guarded_session` ignore proxy environment variables (a proxy would
be the address actually connected to, defeating the check) and are never redirected.
"""

from __future__ import annotations

import functools
import ipaddress
import socket
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError
from urllib3.util.connection import create_connection

from flask_campaign_retry.errors import ConfigurationError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

METADATA_ADDRESSES: frozenset[IPAddress] = frozenset(
    {
        ipaddress.ip_address("169.254.169.254"),  # AWS, GCP, Azure, OpenStack, ...
        ipaddress.ip_address("fd00:ec2::254"),  # AWS IMDS over IPv6
        ipaddress.ip_address("169.254.170.2"),  # AWS ECS task metadata
        ipaddress.ip_address("100.100.100.200"),  # Alibaba Cloud
    }
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_SCHEMES = ("http", "https")


class TargetRefused(ValueError):
    """A webhook URL whose host is, or resolves to, an address the policy refuses.

    A ValueError on purpose: urllib3 and requests wrap OSError-like failures into connection
    errors (which are retried); a refusal must surface as itself and never be retried.
    """

    def __init__(self, host: str, reason: str) -> None:
        super().__init__(f"{host}: {reason}")
        self.host = host
        self.reason = reason


def redact_url(url: str) -> str:
    """``scheme://host[:port]`` of ``url``, for logs: paths and queries often hold tokens."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or "?"
        port = parts.port
    except ValueError:
        return "<unparseable URL>"
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme}://{host}" + (f":{port}" if port else "")


def validate_webhook_url(url: object, key: str = "CAMPAIGN_RETRY_ADMIN_WEBHOOK_URLS") -> str:
    """Check the syntax of a configured webhook URL; raise ConfigurationError saying the fix.

    No DNS lookup happens here: the address policy is applied when a delivery is made.
    """
    if not isinstance(url, str):
        raise ConfigurationError(f"{key} must hold http(s) URLs as strings, got {url!r}.")
    if not url or url != url.strip():
        raise ConfigurationError(
            f"{key} holds an empty URL or one with surrounding spaces: {redact_url(url)!r}."
        )
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - parsing the port validates it
    except ValueError as exc:
        raise ConfigurationError(f"{key} holds an invalid URL ({exc}).") from exc
    if parts.scheme not in _SCHEMES:
        raise ConfigurationError(
            f"{key} must hold http:// or https:// URLs; got scheme {parts.scheme!r}."
        )
    if not parts.hostname:
        raise ConfigurationError(f"{key} holds a URL without a host: {redact_url(url)}.")
    if parts.fragment:
        raise ConfigurationError(
            f"{key} holds a URL with a #fragment, which is never sent: {redact_url(url)}."
        )
    return url


def _embedded_ipv4(address: IPAddress) -> list[ipaddress.IPv4Address]:
    """IPv4 addresses an IPv6 address carries (mapped, 6to4, Teredo, NAT64)."""
    if not isinstance(address, ipaddress.IPv6Address):
        return []
    found: list[ipaddress.IPv4Address] = []
    if address.ipv4_mapped is not None:
        found.append(address.ipv4_mapped)
    if address.sixtofour is not None:
        found.append(address.sixtofour)
    if address.teredo is not None:
        found.extend(address.teredo)
    if address in _NAT64:
        found.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    return found


def refusal_reason(address: IPAddress, *, allow_private: bool) -> str | None:
    """Why ``address`` may not receive a webhook, or None when it may.

    Loopback is judged before "reserved" because IPv6's reserved ``::/8`` contains ``::1``.
    """
    if address in METADATA_ADDRESSES:
        return "cloud metadata address"
    for inner in _embedded_ipv4(address):
        reason = refusal_reason(inner, allow_private=allow_private)
        if reason is not None:
            return f"{reason} (embedded in {address})"
    if isinstance(address, ipaddress.IPv6Address) and (
        address.ipv4_mapped is not None or address in _NAT64
    ):
        return None  # it stands for the IPv4 address, which passed
    if address.is_multicast:
        return "multicast address"
    if address.is_unspecified:
        return "unspecified address"
    if address.is_loopback:
        return None if allow_private else "loopback address"
    if address.is_reserved:
        return "reserved address"
    if allow_private:
        return None
    if address.is_link_local:
        return "link-local address"
    if address.is_private:
        return "private address"
    if not address.is_global:
        return "address that is not globally routable"
    return None


def _literal_address(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def safe_addresses(host: str, port: int, *, allow_private: bool) -> list[str]:
    """Resolve ``host`` and return its addresses, or raise TargetRefused.

    Every address must pass :func:`refusal_reason`: a name that resolves to one public and one
    private address is refused (the connection could go to either). A literal IP is judged as
    is, without a lookup. DNS failures raise ``socket.gaierror`` (a transient failure).
    """
    literal = _literal_address(host)
    if literal is not None:
        addresses: list[IPAddress] = [literal]
    else:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        addresses = []
        for _family, _type, _proto, _name, sockaddr in infos:
            address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
            if address not in addresses:
                addresses.append(address)
        if not addresses:
            raise TargetRefused(host, "the name resolves to no address")
    for address in addresses:
        reason = refusal_reason(address, allow_private=allow_private)
        if reason is not None:
            where = "is a" if literal is not None else f"resolves to {address}, a"
            raise TargetRefused(host, f"{where} {reason}")
    return [str(address) for address in addresses]


def check_target(url: str, *, allow_private: bool) -> list[str]:
    """The addresses ``url``'s host resolves to, or TargetRefused saying why it may not be used."""
    parts = urlsplit(url)
    if parts.scheme not in _SCHEMES or not parts.hostname:
        raise TargetRefused(redact_url(url), "not an http(s) URL with a host")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return safe_addresses(parts.hostname, port, allow_private=allow_private)


def _connect_checked(conn: HTTPConnection, allow_private: bool) -> socket.socket:
    """Resolve, check and connect to a checked address (replaces urllib3's ``_new_conn``)."""
    port = conn.port or conn.default_port
    try:
        addresses = safe_addresses(conn.host, port, allow_private=allow_private)
    except socket.gaierror as exc:
        raise NameResolutionError(conn.host, conn, exc) from exc
    last_error: OSError | None = None
    for address in addresses:
        try:
            return create_connection(
                (address, port),
                conn.timeout,
                source_address=conn.source_address,
                socket_options=conn.socket_options,
            )
        except OSError as exc:  # TimeoutError included: try the next address
            last_error = exc
    if isinstance(last_error, TimeoutError):
        raise ConnectTimeoutError(
            conn, f"Connection to {conn.host} timed out. (connect timeout={conn.timeout})"
        ) from last_error
    raise NewConnectionError(conn, f"Failed to establish a new connection: {last_error}")


class _PinnedHTTPConnection(HTTPConnection):
    allow_private = False

    def _new_conn(self) -> socket.socket:
        return _connect_checked(self, self.allow_private)


class _PinnedHTTPSConnection(HTTPSConnection):
    allow_private = False

    def _new_conn(self) -> socket.socket:
        return _connect_checked(self, self.allow_private)


@functools.cache
def _pool_classes(allow_private: bool) -> dict[str, type[HTTPConnectionPool]]:
    """Pool classes whose connections apply the policy with ``allow_private``."""
    http_conn = type(
        "PinnedHTTPConnection", (_PinnedHTTPConnection,), {"allow_private": allow_private}
    )
    https_conn = type(
        "PinnedHTTPSConnection", (_PinnedHTTPSConnection,), {"allow_private": allow_private}
    )
    http_pool = type(
        "PinnedHTTPConnectionPool", (HTTPConnectionPool,), {"ConnectionCls": http_conn}
    )
    https_pool = type(
        "PinnedHTTPSConnectionPool", (HTTPSConnectionPool,), {"ConnectionCls": https_conn}
    )
    return {"http": http_pool, "https": https_pool}


class _PinnedAdapter(HTTPAdapter):
    """A requests adapter whose connections go only to addresses the policy allows."""

    def __init__(self, *, allow_private: bool) -> None:
        self._allow_private = allow_private
        super().__init__(max_retries=0)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _pool_classes(self._allow_private)


def guarded_session(*, allow_private: bool) -> requests.Session:
    """A requests session that applies the address policy when it connects.

    It ignores proxy settings from the environment (``trust_env`` off) and has no retries of
    its own (the delivery job owns retrying). Pass ``allow_redirects=False`` when posting.
    """
    session = requests.Session()
    session.trust_env = False
    adapter = _PinnedAdapter(allow_private=allow_private)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session
