"""The one network layer against real HTTPS servers on 127.0.0.1 (trustme certificates)."""

from __future__ import annotations

import http.server
import select
import socket
import socketserver
import threading
from collections.abc import Iterator
from pathlib import Path

import keyring
import pytest
import trustme
from cryptography.hazmat.primitives import serialization
from keyring.backends import fail

from aegis_engine.errors import (
    ClientCertError,
    ConfigError,
    ConsentRequired,
    HTTPStatusError,
    NetTimeout,
    NetworkError,
    PinMismatch,
    ResponseTooLarge,
    TLSVerificationError,
)
from aegis_engine.net import (
    HostRateLimiter,
    NetClient,
    NetConfig,
    normalize_pin,
    spki_sha256,
    update_settings_from,
)
from aegis_engine.paths import AegisPaths
from aegis_engine.privacy.consent import ConsentStore
from tests.e2e_gui.helpers import MemoryKeyring
from tests.https_server import HTTPSServer, busy_once, https_server, send_bytes

PURPOSE = "update-checks"


class Allow:
    def require(self, purpose_id: str) -> None:
        return None


class Sleeps:
    def __init__(self) -> None:
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[HTTPSServer]:
    with https_server(tmp_path) as srv:
        srv.routes["/hello"] = lambda h: send_bytes(h, b"hello")
        yield srv


def client(srv: HTTPSServer, **kw: object) -> NetClient:
    sleep = kw.pop("sleep", None)
    consent = kw.pop("consent", Allow())
    cfg = NetConfig(ca_file=srv.ca_file, **kw)  # type: ignore[arg-type]
    if sleep is not None:
        return NetClient(cfg, consent, sleep=sleep)  # type: ignore[arg-type]
    return NetClient(cfg, consent)  # type: ignore[arg-type]


def test_get_over_verified_tls(server: HTTPSServer) -> None:
    with client(server) as c:
        r = c.get(server.url + "/hello", purpose=PURPOSE)
    assert r.status == 200 and r.content == b"hello"


def test_requests_ca_bundle_is_honoured(
    server: HTTPSServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    with NetClient(NetConfig(), Allow()) as c, pytest.raises(TLSVerificationError):
        c.get(server.url + "/hello", purpose=PURPOSE)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(server.ca_file))
    with NetClient(NetConfig(), Allow()) as c:
        assert c.get(server.url + "/hello", purpose=PURPOSE).content == b"hello"


def test_unknown_ca_refused(server: HTTPSServer, tmp_path: Path) -> None:
    other = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other))
    with NetClient(NetConfig(ca_file=other), Allow()) as c, pytest.raises(TLSVerificationError):
        c.get(server.url + "/hello", purpose=PURPOSE)
    assert server.stats.requests == []


def test_wrong_host_name_refused(tmp_path: Path) -> None:
    with https_server(tmp_path, hostnames=("updates.example.org",)) as srv:
        srv.routes["/hello"] = lambda h: send_bytes(h, b"hello")
        with client(srv) as c, pytest.raises(TLSVerificationError):
            c.get(srv.url + "/hello", purpose=PURPOSE)
        assert srv.stats.requests == []


def test_pins_any_of_several_accepted(server: HTTPSServer) -> None:
    der = server.server_cert.cert_chain_pems[0].bytes()
    from cryptography import x509

    real = spki_sha256(x509.load_pem_x509_certificate(der).public_bytes(serialization.Encoding.DER))
    with client(server, pins=("00" * 32, real)) as c:
        assert c.get(server.url + "/hello", purpose=PURPOSE).content == b"hello"


def test_pin_mismatch_refused_before_the_body_is_sent(server: HTTPSServer) -> None:
    with client(server, pins=("ab" * 32,)) as c, pytest.raises(PinMismatch) as err:
        c.post(server.url + "/hello", purpose=PURPOSE, body=b"secret body")
    assert "nothing was sent" in str(err.value)
    assert server.stats.connections >= 1  # the handshake happened ...
    assert server.stats.requests == [] and server.stats.bodies == []  # ... nothing else


def test_no_consent_no_socket(server: HTTPSServer, aegis_paths: AegisPaths) -> None:
    store = ConsentStore.for_paths(aegis_paths)
    store.revoke(PURPOSE)
    with client(server, consent=store) as c:
        with pytest.raises(ConsentRequired):
            c.get(server.url + "/hello", purpose=PURPOSE)
        with pytest.raises(ConsentRequired):  # off by default
            c.post(server.url + "/hello", purpose="cloud-lookup", body=b"x")
    assert server.stats.connections == 0
    store.grant(PURPOSE)
    with client(server, consent=store) as c:
        assert c.get(server.url + "/hello", purpose=PURPOSE).content == b"hello"


def test_429_retry_after_honoured(server: HTTPSServer) -> None:
    busy = busy_once("3", lambda h: send_bytes(h, b"ok now"))
    server.routes["/busy"] = busy
    sleeps = Sleeps()
    with client(server, sleep=sleeps) as c:
        assert c.get(server.url + "/busy", purpose=PURPOSE).content == b"ok now"
    assert sleeps.calls == [3.0]
    assert busy.calls == 2


def test_retry_after_too_long_is_not_waited_for(server: HTTPSServer) -> None:
    def busy(h: http.server.BaseHTTPRequestHandler) -> None:
        h.send_response(503)
        h.send_header("Retry-After", "86400")
        h.send_header("Content-Length", "0")
        h.end_headers()

    server.routes["/busy"] = busy
    sleeps = Sleeps()
    with client(server, sleep=sleeps) as c, pytest.raises(HTTPStatusError) as err:
        c.get(server.url + "/busy", purpose=PURPOSE)
    assert err.value.status == 503 and "86400" in str(err.value)
    assert sleeps.calls == []


def test_503_without_retry_after_backs_off_then_gives_up(server: HTTPSServer) -> None:
    server.routes["/down"] = lambda h: send_bytes(h, b"", 503)
    sleeps = Sleeps()
    with client(server, sleep=sleeps, retries=2, backoff=0.5) as c, pytest.raises(HTTPStatusError):
        c.get(server.url + "/down", purpose=PURPOSE)
    assert len(sleeps.calls) == 2 and sleeps.calls[1] > sleeps.calls[0] >= 0.5
    assert len(server.stats.requests) == 3


def test_stalled_server_times_out(server: HTTPSServer) -> None:
    release = threading.Event()

    def stall(h: http.server.BaseHTTPRequestHandler) -> None:
        release.wait(60)

    def stall_mid_body(h: http.server.BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Length", "1000")
        h.end_headers()
        h.wfile.write(b"x" * 10)
        h.wfile.flush()
        release.wait(60)

    server.routes["/stall"] = stall
    server.routes["/trickle"] = stall_mid_body
    try:
        with client(server, read_timeout=1.0, retries=0) as c:
            with pytest.raises(NetTimeout):
                c.get(server.url + "/stall", purpose=PURPOSE)
            with pytest.raises(NetTimeout):
                c.get(server.url + "/trickle", purpose=PURPOSE)
    finally:
        release.set()


def test_endless_data_is_capped(server: HTTPSServer) -> None:
    def endless(h: http.server.BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Connection", "close")
        h.end_headers()
        try:
            for _ in range(10_000):
                h.wfile.write(b"z" * 65536)
        except OSError:
            pass
        h.close_connection = True

    server.routes["/endless"] = endless
    server.routes["/big"] = lambda h: send_bytes(h, b"y" * 300_000)
    with client(server) as c:
        with pytest.raises(ResponseTooLarge):
            c.get(server.url + "/endless", purpose=PURPOSE, max_bytes=1_000_000)
        with pytest.raises(ResponseTooLarge, match="announces"):
            c.get(server.url + "/big", purpose=PURPOSE, max_bytes=1000)


def test_plain_http_refused(server: HTTPSServer) -> None:
    with client(server) as c, pytest.raises(NetworkError, match="https"):
        c.get(f"http://127.0.0.1:{server.port}/hello", purpose=PURPOSE)
    assert server.stats.connections == 0


def test_token_bucket_per_host() -> None:
    now = [0.0]
    waits: list[float] = []

    def sleep(s: float) -> None:
        waits.append(s)
        now[0] += s

    bucket = HostRateLimiter(rate=2.0, burst=2, clock=lambda: now[0], sleep=sleep)
    assert bucket.acquire("a") == 0 and bucket.acquire("a") == 0
    assert bucket.acquire("b") == 0  # another host has its own bucket
    assert bucket.acquire("a") == pytest.approx(0.5)
    assert waits == [pytest.approx(0.5)]


# -- mTLS -----------------------------------------------------------------------------------


@pytest.fixture
def mtls(tmp_path: Path) -> Iterator[tuple[HTTPSServer, Path, Path, Path]]:
    client_ca = trustme.CA()
    leaf = client_ca.issue_cert("aegis-client@example.org")
    cert = tmp_path / "client.pem"
    leaf.cert_chain_pems[0].write_to_path(str(cert))
    plain_key = tmp_path / "client.key"
    leaf.private_key_pem.write_to_path(str(plain_key))
    key = serialization.load_pem_private_key(leaf.private_key_pem.bytes(), None)
    enc_key = tmp_path / "client-enc.key"
    enc_key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"s3cret"),
        )
    )
    with https_server(tmp_path, client_ca=client_ca) as srv:
        srv.routes["/hello"] = lambda h: send_bytes(h, b"hello")
        yield srv, cert, plain_key, enc_key
    keyring.set_keyring(fail.Keyring())


def test_mtls_client_certificate(mtls: tuple[HTTPSServer, Path, Path, Path]) -> None:
    srv, cert, key, _ = mtls
    with client(srv) as c, pytest.raises(NetworkError):
        c.get(srv.url + "/hello", purpose=PURPOSE)
    with client(srv, client_cert=cert, client_key=key) as c:
        assert c.get(srv.url + "/hello", purpose=PURPOSE).content == b"hello"


def test_encrypted_key_needs_a_keyring(mtls: tuple[HTTPSServer, Path, Path, Path]) -> None:
    srv, cert, _, enc = mtls
    keyring.set_keyring(fail.Keyring())
    with client(srv, client_cert=cert, client_key=enc) as c, pytest.raises(ClientCertError) as e:
        c.get(srv.url + "/hello", purpose=PURPOSE)
    assert "no OS keyring" in str(e.value) and "keyring set aegis" in str(e.value)
    assert srv.stats.connections == 0
    ring = MemoryKeyring()
    keyring.set_keyring(ring)
    with client(srv, client_cert=cert, client_key=enc) as c, pytest.raises(ClientCertError):
        c.get(srv.url + "/hello", purpose=PURPOSE)  # keyring present, passphrase absent
    ring.set_password("aegis", f"client-key:{enc}", "s3cret")
    with client(srv, client_cert=cert, client_key=enc) as c:
        assert c.get(srv.url + "/hello", purpose=PURPOSE).content == b"hello"


# -- settings -------------------------------------------------------------------------------


def test_settings_adapter() -> None:
    pin_b64 = "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
    s = update_settings_from(
        {
            "updates": {
                "server": "https://updates.example.org/aegis/",
                "pins": [pin_b64, "AB:" * 31 + "AB"],
                "ca_file": "/etc/aegis/ca.pem",
                "proxy": "http://proxy:3128",
            }
        }
    )
    assert s.server == "https://updates.example.org/aegis/"
    assert s.net.pins_normalized == (normalize_pin(pin_b64), "ab" * 32)
    assert s.net.ca_file == Path("/etc/aegis/ca.pem") and s.net.proxy == "http://proxy:3128"
    with pytest.raises(ConfigError, match="unknown"):
        update_settings_from({"updates": {"sever": "x"}})
    with pytest.raises(ConfigError, match="pin"):
        update_settings_from({"updates": {"pins": ["nope"]}})
    assert update_settings_from({}).server is None


# -- proxies --------------------------------------------------------------------------------


class _ConnectProxy(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    tunnels: list[str]


class _ConnectHandler(socketserver.BaseRequestHandler):
    server: _ConnectProxy

    def handle(self) -> None:
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.request.recv(4096)
            if not chunk:
                return
            head += chunk
        method, target = head.split(b" ", 2)[:2]
        if method != b"CONNECT":
            self.request.sendall(b"HTTP/1.1 405 No\r\nContent-Length: 0\r\n\r\n")
            return
        self.server.tunnels.append(target.decode())
        host, port = target.decode().rsplit(":", 1)
        assert host == "127.0.0.1"  # loopback only
        upstream = socket.create_connection((host, int(port)), timeout=30)
        self.request.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        socks = [self.request, upstream]
        try:
            while True:
                ready, _, _ = select.select(socks, [], [], 30)
                if not ready:
                    return
                for s in ready:
                    try:
                        data = s.recv(65536)
                    except OSError:  # the client hung up (e.g. after a pin mismatch)
                        return
                    if not data:
                        return
                    (upstream if s is self.request else self.request).sendall(data)
        finally:
            upstream.close()


@pytest.fixture
def proxy() -> Iterator[_ConnectProxy]:
    srv = _ConnectProxy(("127.0.0.1", 0), _ConnectHandler)
    srv.tunnels = []
    t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    t.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()


def test_proxy_from_settings_tunnels_and_still_pins(
    server: HTTPSServer, proxy: _ConnectProxy
) -> None:
    url = f"http://127.0.0.1:{proxy.server_address[1]}"
    with client(server, proxy=url, trust_env=False) as c:
        assert c.get(server.url + "/hello", purpose=PURPOSE).content == b"hello"
    assert proxy.tunnels == [f"127.0.0.1:{server.port}"]
    with (
        client(server, proxy=url, trust_env=False, pins=("ef" * 32,)) as c,
        pytest.raises(PinMismatch),
    ):
        c.get(server.url + "/hello", purpose=PURPOSE)
    assert server.stats.requests == ["/hello"]  # the pinned try sent nothing


def test_proxy_from_environment(
    server: HTTPSServer, proxy: _ConnectProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{proxy.server_address[1]}")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    with client(server) as c:
        assert c.get(server.url + "/hello", purpose=PURPOSE).content == b"hello"
    assert len(proxy.tunnels) == 1
