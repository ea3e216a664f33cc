"""SSRF: which webhook URLs may be called, and the connection made to the checked address
(kyma/webhooks/ssrf.py).  Unit tier: a fake resolver, and real sockets on loopback only."""

from __future__ import annotations

import http.server
import socket
import threading
import time

import pytest

from kyma.webhooks import ssrf

PUBLIC_V4, PUBLIC_V6 = "93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"


def resolving_to(*addresses: str):
    return lambda host, port: list(addresses)


# Every address class the issue lists, and the IPv6 forms that embed one.
NON_PUBLIC = [
    ("127.0.0.1", "loopback"), ("127.53.0.9", "loopback"), ("::1", "loopback"),
    ("10.0.0.5", "private"), ("172.16.3.4", "private"), ("172.31.255.255", "private"), ("192.168.1.1", "private"),
    ("169.254.169.254", "link-local"), ("169.254.0.1", "link-local"), ("fe80::1", "link-local"),
    ("100.64.0.1", "CGNAT"), ("100.127.255.254", "CGNAT"),
    ("fc00::1", "unique-local"), ("fd12:3456:789a::1", "unique-local"),
    ("0.0.0.0", "unspecified"), ("::", "unspecified"),  # noqa: S104 (an address to refuse, not a bind)
    ("224.0.0.1", "multicast"), ("ff02::1", "multicast"),
    ("::ffff:169.254.169.254", "embeds link-local"), ("::ffff:127.0.0.1", "embeds loopback"),
    ("::ffff:10.1.2.3", "embeds private"),
    ("2002:a9fe:a9fe::1", "embeds link-local"),          # 6to4 around 169.254.169.254
    ("64:ff9b::a9fe:a9fe", "embeds link-local"),          # NAT64 around 169.254.169.254
    ("fec0::1", "site-local"),
    ("192.0.2.10", "non-public"), ("198.18.0.1", "non-public"), ("240.0.0.1", "non-public"),
    ("255.255.255.255", "non-public"), ("2001:db8::1", "non-public"),
]


@pytest.mark.parametrize(("address", "kind"), NON_PUBLIC)
def test_every_non_public_address_class_is_refused_with_its_reason(address, kind):
    with pytest.raises(ssrf.Refused) as refused:
        ssrf.check("https://receiver.example.com/hook", resolver=resolving_to(address))
    assert "non-public address" in str(refused.value)
    reason = ssrf.non_public_reason(address)
    assert reason is not None
    if kind != "non-public":
        assert kind in reason, (address, reason)


@pytest.mark.parametrize("address", [PUBLIC_V4, "8.8.8.8", "1.1.1.1", PUBLIC_V6, "::ffff:93.184.216.34"])
def test_public_addresses_pass_and_the_target_carries_the_checked_address(address):
    target = ssrf.check("https://receiver.example.com:8443/hook?token=abc", resolver=resolving_to(address))
    assert (target.scheme, target.host, target.port, target.path, target.address) == (
        "https", "receiver.example.com", 8443, "/hook?token=abc", address)
    assert "token" not in repr(target)            # a log line never shows the query


def test_one_non_public_address_among_public_ones_refuses_the_host():
    with pytest.raises(ssrf.Refused):
        ssrf.check("https://mixed.example.com/", resolver=resolving_to(PUBLIC_V4, "10.0.0.1"))


@pytest.mark.parametrize("url", [
    "https://2852039166/",                 # 169.254.169.254 as one decimal number
    "https://0xA9FEA9FE/",                 # ... in hex
    "https://0251.0376.0251.0376/",        # ... in octal
    "https://169.254.43518/",              # ... with a 16-bit tail
    "https://[::ffff:169.254.169.254]/",   # ... IPv4-mapped IPv6
    "https://[::ffff:a9fe:a9fe]/",
    "https://0x7f.1/", "https://127.1/", "https://017700000001/",   # 127.0.0.1 spelt three ways
    "https://[::1]:8443/", "https://[fd00::1]/", "https://100.64.1.1/", "https://0.0.0.0/",
])
def test_numeric_spellings_are_read_as_the_resolver_reads_them_and_refused(url):
    # The system resolver (getaddrinfo) parses numeric hosts itself: no DNS involved.
    with pytest.raises(ssrf.Refused, match="non-public"):
        ssrf.check(url)


@pytest.mark.parametrize(("url", "why"), [
    ("http://receiver.example.com/hook", "https"),
    ("http://2852039166/", "https"),
    ("ftp://receiver.example.com/", "https"),
    ("https://user:pass@receiver.example.com/", "credentials"),
    ("https://receiver.example.com@10.0.0.1/", "credentials"),
    ("https:///nohost", "no host"),
    ("https://receiver.example.com/a b", "spaces"),
    ("https://receiver.example.com:99999/", "valid URL"),
    ("", "1 to"),
    ("https://x.example.com/" + "a" * 2100, "1 to"),
])
def test_malformed_or_non_https_urls_are_refused_before_any_resolution(url, why):
    def never(host, port):
        raise AssertionError("resolved a URL that should have been refused first")

    with pytest.raises(ssrf.Refused, match=why):
        ssrf.check(url, resolver=never)


def test_the_local_stack_allows_plain_http_to_loopback_and_nothing_else_non_public():
    target = ssrf.check("http://127.0.0.1:4567/hook", allow_loopback=True)
    assert (target.scheme, target.address, target.port) == ("http", "127.0.0.1", 4567)
    for url in ("http://10.0.0.1/", "https://169.254.169.254/", "http://2852039166/"):
        with pytest.raises(ssrf.Refused):
            ssrf.check(url, allow_loopback=True)
    with pytest.raises(ssrf.Refused, match="https"):      # plain http to a public host: still refused
        ssrf.check("http://receiver.example.com/", allow_loopback=True, resolver=resolving_to(PUBLIC_V4))
    with pytest.raises(ssrf.Refused):                      # and loopback is refused without the flag
        ssrf.check("http://127.0.0.1:4567/hook")


# ── the connection: to the checked address, never resolved again, no redirects, 10 s in all ──
class _Receiver(http.server.BaseHTTPRequestHandler):
    seen: list = []  # noqa: RUF012 (reset per test by the fixture)
    status = 200

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).seen.append((self.path, self.headers["Host"], body))
        self.send_response(self.status)
        if self.status == 302:
            self.send_header("Location", "http://169.254.169.254/latest/meta-data/")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def receiver():
    _Receiver.seen, _Receiver.status = [], 200
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()


def test_the_post_connects_to_the_checked_address_and_never_resolves_the_name(receiver, monkeypatch):
    port = receiver.server_address[1]
    asked: list[str] = []
    real = socket.getaddrinfo
    monkeypatch.setattr(socket, "getaddrinfo", lambda host, *a, **k: (asked.append(host), real(host, *a, **k))[1])
    # A name that does not resolve anywhere: only the pinned address can reach the receiver.
    target = ssrf.Target(scheme="http", host="receiver.invalid", port=port, path="/hook?x=1", address="127.0.0.1")
    answer = ssrf.post(target, b'{"a":1}', {"content-type": "application/json"}, timeout=5)
    assert answer.status == 200
    assert _Receiver.seen == [("/hook?x=1", f"receiver.invalid:{port}", b'{"a":1}')]
    assert "receiver.invalid" not in asked and asked == ["127.0.0.1"]


def test_a_redirect_is_not_followed(receiver):
    _Receiver.status = 302
    target = ssrf.Target(scheme="http", host="127.0.0.1", port=receiver.server_address[1], path="/",
                         address="127.0.0.1")
    answer = ssrf.post(target, b"{}", {}, timeout=5)
    assert answer.status == 302 and len(_Receiver.seen) == 1      # one request, the Location never visited


def test_a_receiver_that_trickles_its_answer_is_cut_off_at_the_deadline():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)

    def trickle():
        conn, _ = listener.accept()
        conn.recv(65536)
        for _ in range(40):                  # one byte every 0.1 s: each read is quick, the whole is not
            try:
                conn.send(b"H")
            except OSError:
                return
            time.sleep(0.1)
        conn.close()

    threading.Thread(target=trickle, daemon=True).start()
    target = ssrf.Target(scheme="http", host="127.0.0.1", port=listener.getsockname()[1], path="/", address="127.0.0.1")
    started = time.monotonic()
    with pytest.raises((OSError, ssrf.http.client.HTTPException)):
        ssrf.post(target, b"{}", {}, timeout=1.0)
    assert time.monotonic() - started < 2.0
    listener.close()
