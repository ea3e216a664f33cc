"""No way in for SSRF: which URLs a webhook may name, and the connection made to the address checked.

A customer chooses the URL, so it is checked twice: at registration and at every delivery (DNS
can change between the two: "DNS rebinding").  In AWS the URL must be `https`; its host is resolved
and refused if ANY address it resolves to is not a public unicast address: loopback, private
(RFC 1918), link-local (169.254.0.0/16, the instance metadata service), CGNAT (100.64.0.0/10),
unique-local (fc00::/7), multicast, reserved, unspecified, documentation and benchmark ranges;
IPv6 forms that embed an IPv4 address (IPv4-mapped ::ffff:a.b.c.d, 6to4, Teredo, NAT64) are
judged by the IPv4 address inside.  Numeric spellings of a host (2852039166, 0xA9FEA9FE,
0251.0376.0251.0376, 169.254.43518) are resolved by the same resolver the connection would use
(`getaddrinfo`, which reads them as 169.254.169.254), so they are refused like the dotted form.

`open_pinned` then connects to the very address that was checked, never resolving the name again;
TLS still sends the hostname (SNI) and verifies the certificate against it.  Redirects are never
followed (`http.client` does not follow them; a 3xx is a failed delivery).

Locally (`WEBHOOKS_ALLOW_LOOPBACK`, set only by the local stack, never by template.yaml),
`http://` to a loopback address is allowed too, so that tests can receive on 127.0.0.1.  Every
other non-public address is still refused there.
"""

from __future__ import annotations

import contextlib
import http.client
import ipaddress
import socket
import ssl
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

MAX_URL_LENGTH = 2048
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Sequence[str]]


class Refused(ValueError):
    """The URL may not be called; the message says why, for the customer (no address disclosed
    beyond what they typed, and which class it is)."""


def system_resolver(host: str, port: int) -> list[str]:
    """Every address `host` resolves to, as the connection would resolve it."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise Refused(f"the host {host!r} does not resolve") from exc
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def non_public_reason(address: str) -> str | None:
    """None if `address` is a public unicast address; otherwise the class it belongs to."""
    try:
        ip: Address = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return "not an IP address"
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or (ip.sixtofour) or (ip.teredo[1] if ip.teredo else None)
        if embedded is None and (ip in _NAT64 or ip in _NAT64_LOCAL):
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is not None:
            inner = non_public_reason(str(embedded))
            return f"embeds {inner}" if inner else None
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link-local"
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_multicast:
        return "multicast"
    if isinstance(ip, ipaddress.IPv4Address) and ip in ipaddress.ip_network("100.64.0.0/10"):
        return "CGNAT (shared address space)"
    if isinstance(ip, ipaddress.IPv6Address) and ip in ipaddress.ip_network("fc00::/7"):
        return "unique-local"
    if isinstance(ip, ipaddress.IPv6Address) and ip in ipaddress.ip_network("fec0::/10"):
        return "site-local"
    if ip.is_private:
        return "private"
    if ip.is_reserved or not ip.is_global:
        return "reserved or otherwise non-public"
    return None


@dataclass(frozen=True)
class Target:
    """A URL that passed the checks, and the address the connection must use."""

    scheme: str
    host: str          # as written (IPv6 without brackets): the Host header, SNI, certificate name
    port: int
    path: str          # path and query
    address: str       # the checked address to connect to

    def __repr__(self) -> str:    # never the query string in logs (it may carry a token)
        return f"Target({self.scheme}://{self.host}:{self.port} via {self.address})"


def parse(url: str, *, allow_loopback: bool) -> tuple[str, str, int, str]:
    """(scheme, host, port, path) of a well-formed URL we may call, or Refused."""
    if not isinstance(url, str) or not url or len(url) > MAX_URL_LENGTH:
        raise Refused(f"url must be a string of 1 to {MAX_URL_LENGTH} characters")
    if any(c.isspace() or ord(c) < 0x21 or ord(c) == 0x7F for c in url):
        raise Refused("url may not contain spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise Refused("url is not a valid URL") from exc
    scheme = parts.scheme.lower()
    if scheme != "https" and not (allow_loopback and scheme == "http"):
        raise Refused("url must be https")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise Refused("url may not carry credentials (user:password@)")
    host = parts.hostname
    if not host:
        raise Refused("url has no host")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return scheme, host, port or (443 if scheme == "https" else 80), path


def check(url: str, *, allow_loopback: bool = False, resolver: Resolver = system_resolver) -> Target:
    """Resolve the URL's host now and refuse it unless every address is public (or, with
    `allow_loopback`, loopback).  The Target carries the address to connect to."""
    scheme, host, port, path = parse(url, allow_loopback=allow_loopback)
    addresses = list(resolver(host, port))
    if not addresses:
        raise Refused(f"the host {host!r} does not resolve")
    for address in addresses:
        reason = non_public_reason(address)
        if reason is None:
            continue
        if allow_loopback and reason == "loopback":
            continue
        raise Refused(f"the host {host!r} resolves to a non-public address ({reason})")
    if scheme == "http" and not all(non_public_reason(a) == "loopback" for a in addresses):
        raise Refused("url must be https")        # plain http only to loopback, and only locally
    return Target(scheme=scheme, host=host, port=port, path=path, address=addresses[0])


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes


def post(target: Target, body: bytes, headers: dict[str, str], *, timeout: float,
         max_body: int = 4096) -> Answer:
    """POST `body` to the checked address (never resolving the host again), with at most `timeout`
    seconds for the whole exchange (connect, send, answer): a receiver that trickles its answer
    is cut off at the deadline.  Redirects are not followed.  Raises OSError (incl. TimeoutError,
    ssl.SSLError) or http.client.HTTPException on transport failures."""
    conn: http.client.HTTPConnection
    if target.scheme == "https":
        conn = http.client.HTTPSConnection(target.host, target.port, timeout=timeout,
                                           context=ssl.create_default_context())
    else:
        conn = http.client.HTTPConnection(target.host, target.port, timeout=timeout)

    def pinned(_address: tuple[str, int], timeout: float | None = None,
               source_address: tuple[str, int] | None = None) -> socket.socket:
        return socket.create_connection((target.address, target.port), timeout, source_address)

    # http.client opens its socket through this attribute; TLS then wraps it with
    # server_hostname=target.host, so SNI and certificate checks use the name, not the address.
    conn._create_connection = pinned  # type: ignore[attr-defined]
    timer = threading.Timer(timeout, _shutdown, args=(conn,))
    timer.daemon = True
    timer.start()
    try:
        conn.request("POST", target.path, body=body, headers=headers)
        response = conn.getresponse()
        content = response.read(max_body)
        return Answer(status=response.status, body=content)
    finally:
        timer.cancel()
        conn.close()


def _shutdown(conn: http.client.HTTPConnection) -> None:
    sock = conn.sock
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
