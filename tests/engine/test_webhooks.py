"""Webhook delivery against a real HTTP receiver on 127.0.0.1: signing, retries, the log, SSRF."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from pydantic import SecretStr

from engine.config import Config, load_config
from engine.webhooks import (
    DeliveryPolicy,
    address_category,
    build_event,
    delivery_log_path,
    read_delivery_log,
    send_event,
    sign,
    verify_signature,
)

SECRET = "whsec-never-log-me-4242"
QUICK = DeliveryPolicy(max_attempts=3, first_delay_s=0.05, backoff_factor=2.0, timeout_s=2.0)
SUMMARY = {"total_rows": 3, "by_status": {"valid": 2, "invalid": 1}, "duplicates": 0}
LOCATIONS = {"results_csv": Path("/data/lists/l1/results.csv"), "summary": "/data/summary.json"}


@dataclass
class Received:
    at: float
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """A webhook endpoint: answers each POST with the next scripted status (then 204)."""

    url: str
    port: int
    script: list[int | str] = field(default_factory=list)
    requests: list[Received] = field(default_factory=list)

    def next_answer(self) -> int | str:
        return self.script.pop(0) if self.script else 204


@contextmanager
def _serving(server: ThreadingHTTPServer) -> Iterator[None]:
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _handler(receiver_of: dict[str, Receiver]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            receiver = receiver_of["it"]
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            receiver.requests.append(Received(time.monotonic(), dict(self.headers), body))
            answer = receiver.next_answer()
            if answer == "hang":  # slower than the client's timeout
                time.sleep(1.0)
                answer = 204
            assert isinstance(answer, int)
            self.send_response(answer)
            if 300 <= answer < 400:
                self.send_header("Location", "http://10.0.0.1/elsewhere")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    receiver_of: dict[str, Receiver] = {}
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(receiver_of))
    port = server.server_address[1]
    receiver_of["it"] = Receiver(url=f"http://127.0.0.1:{port}/hooks/mailsift", port=port)
    with _serving(server):
        yield receiver_of["it"]


def _config(tmp_path: Path, url: str, *, allow_private: bool = True, secret: str | None = SECRET):
    return Config(
        data_dir=tmp_path,
        webhook_url=url,
        webhook_secret=SecretStr(secret) if secret is not None else None,
        webhook_allow_private=allow_private,
    )


def _send(config: Config, event: str = "list.completed", **options):
    return send_event(
        event,  # type: ignore[arg-type]
        config,
        list_id="crm-export-3f2a1b4c",
        run_id="run-0001",
        summary=SUMMARY,
        locations=LOCATIONS,
        policy=options.pop("policy", QUICK),
        **options,
    )


def test_receiver_verifies_the_signature_of_the_raw_body(tmp_path, receiver):
    result = _send(_config(tmp_path, receiver.url))

    assert result.delivered and result.status_code == 204
    (request,) = receiver.requests
    header = request.headers["X-Mailsift-Signature"]
    assert header.startswith("sha256=")
    assert verify_signature(request.body, header, SECRET)
    assert not verify_signature(request.body, header, "some-other-secret")
    assert not verify_signature(request.body.replace(b"204", b"205") + b" ", header, SECRET)
    assert not verify_signature(request.body, None, SECRET)


def test_body_carries_the_event_ids_times_summary_and_locations(tmp_path, receiver):
    started = dt.datetime(2026, 4, 5, 14, 22, 0, tzinfo=dt.UTC)
    result = _send(_config(tmp_path, receiver.url), started_at=started)

    (request,) = receiver.requests
    body = json.loads(request.body)
    assert body["event"] == "list.completed" == request.headers["X-Mailsift-Event"]
    assert body["event_id"] == result.event_id == request.headers["X-Mailsift-Event-Id"]
    assert (body["list_id"], body["run_id"]) == ("crm-export-3f2a1b4c", "run-0001")
    assert body["summary"] == SUMMARY
    assert body["locations"] == {
        "results_csv": "/data/lists/l1/results.csv",
        "summary": "/data/summary.json",
    }
    assert body["started_at"] == "2026-04-05T14:22:00.000Z"
    created = dt.datetime.fromisoformat(body["created_at"])
    assert request.headers["X-Mailsift-Timestamp"] == str(int(created.timestamp()))
    assert request.headers["Content-Type"] == "application/json"


def test_failed_event_carries_a_one_line_error(tmp_path, receiver):
    _send(_config(tmp_path, receiver.url), "list.failed", error="probe step crashed:\n  boom")

    body = json.loads(receiver.requests[0].body)
    assert body["event"] == "list.failed"
    assert body["error"] == "probe step crashed: boom"


def test_unknown_event_name_is_a_programming_error():
    with pytest.raises(ValueError, match="unknown webhook event"):
        build_event("list.done", list_id="l", run_id="r", summary={}, locations={})  # type: ignore[arg-type]


def test_server_errors_and_429_are_retried_with_exponential_backoff(tmp_path, receiver):
    receiver.script = [500, 429, 200]

    result = _send(_config(tmp_path, receiver.url))

    assert result.delivered
    assert [a.outcome for a in result.attempts] == ["retry", "retry", "delivered"]
    assert [r.headers["X-Mailsift-Delivery-Attempt"] for r in receiver.requests] == ["1", "2", "3"]
    first_gap = receiver.requests[1].at - receiver.requests[0].at
    second_gap = receiver.requests[2].at - receiver.requests[1].at
    # sleep() never wakes early: lower bounds of 0.05 s, then doubled, are safe on a slow CI box.
    assert first_gap >= 0.05
    assert second_gap >= 0.10
    # A retry resends the identical signed event, so the receiver can dedupe on its id.
    assert len({r.body for r in receiver.requests}) == 1
    assert len({r.headers["X-Mailsift-Signature"] for r in receiver.requests}) == 1


def test_backoff_doubles_up_to_the_cap():
    policy = DeliveryPolicy(max_attempts=6, first_delay_s=1.0, max_delay_s=5.0)
    assert [policy.delay_before(n) for n in range(1, 7)] == [0.0, 1.0, 2.0, 4.0, 5.0, 5.0]


def test_client_error_is_not_retried(tmp_path, receiver):
    receiver.script = [400]

    result = _send(_config(tmp_path, receiver.url))

    assert not result.delivered
    assert len(receiver.requests) == 1
    assert result.status_code == 400
    assert "HTTP 400" in (result.error or "")
    assert [line["outcome"] for line in read_delivery_log(tmp_path)] == ["failed"]


def test_redirect_is_not_followed(tmp_path, receiver):
    receiver.script = [302]

    result = _send(_config(tmp_path, receiver.url))

    assert not result.delivered
    assert len(receiver.requests) == 1
    assert "redirects are not followed" in (result.error or "")


def test_gives_up_after_max_attempts_and_logs_each_attempt(tmp_path, receiver):
    receiver.script = [500] * 10

    result = _send(_config(tmp_path, receiver.url))

    assert not result.delivered
    assert len(receiver.requests) == QUICK.max_attempts == 3
    assert result.error is not None and result.error.startswith("gave up after 3 attempts")
    log = read_delivery_log(tmp_path)
    assert [line["attempt"] for line in log] == [1, 2, 3]
    assert [line["outcome"] for line in log] == ["retry", "retry", "failed"]
    assert {line["status_code"] for line in log} == {500}
    assert {line["event_id"] for line in log} == {result.event_id}
    assert all(line["address"] == "127.0.0.1" and line["duration_ms"] >= 0 for line in log)
    assert all(dt.datetime.fromisoformat(line["time"]).tzinfo is not None for line in log)


def test_connection_errors_are_retried_and_logged(tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]

    result = _send(_config(tmp_path, f"http://127.0.0.1:{closed_port}/hook"))

    assert not result.delivered
    assert len(result.attempts) == 3
    log = read_delivery_log(tmp_path)
    assert [line["status_code"] for line in log] == [None, None, None]
    assert all("ConnectError" in line["error"] for line in log)


def test_timeout_is_retried(tmp_path, receiver):
    receiver.script = ["hang", 200]
    policy = DeliveryPolicy(max_attempts=3, first_delay_s=0.01, timeout_s=0.3)

    result = _send(_config(tmp_path, receiver.url), policy=policy)

    assert result.delivered
    assert [a.outcome for a in result.attempts] == ["retry", "delivered"]
    assert "Timeout" in (result.attempts[0].error or "")


@pytest.mark.parametrize(
    ("url", "category"),
    [
        ("http://127.0.0.1:{port}/hook", "loopback"),
        ("http://localhost:{port}/hook", "loopback"),
        ("http://[::1]:{port}/hook", "loopback"),
        ("http://10.1.2.3/hook", "private"),
        ("http://169.254.169.254/latest/meta-data/", "link-local"),
        ("http://[::ffff:127.0.0.1]:{port}/hook", "loopback"),
        ("http://0.0.0.0:{port}/hook", "unspecified"),
    ],
)
def test_ssrf_guard_refuses_non_public_addresses_by_default(tmp_path, receiver, url, category):
    config = _config(tmp_path, url.format(port=receiver.port), allow_private=False)

    started = time.monotonic()
    result = _send(config)

    assert not result.delivered
    assert receiver.requests == []
    assert time.monotonic() - started < 1.0  # refused up front: no connection, no retries
    (line,) = read_delivery_log(tmp_path)
    assert line["outcome"] == "refused"
    assert f"{category} address" in line["error"]
    assert "\n" not in line["error"]


def test_ssrf_guard_refuses_when_any_resolved_address_is_private(tmp_path, receiver):
    def split_horizon(host: str, port: int) -> list[str]:
        return ["8.8.8.8", "10.0.0.7"]

    config = _config(tmp_path, "https://hooks.example.test/x", allow_private=False)
    result = _send(config, resolver=split_horizon)

    assert not result.delivered
    assert "hooks.example.test resolves to 10.0.0.7, a private address" in (result.error or "")


def test_loopback_is_allowed_when_the_flag_is_set(tmp_path, receiver):
    url = f"http://localhost:{receiver.port}/hook"

    result = _send(_config(tmp_path, url, allow_private=True))

    assert result.delivered
    assert receiver.requests[0].headers["Host"] == f"localhost:{receiver.port}"


def test_connection_goes_to_the_checked_address_not_a_second_lookup(tmp_path, receiver):
    """The name never resolves (.test is reserved), so only the pinned checked address can work."""
    checked: list[str] = []

    def resolver(host: str, port: int) -> list[str]:
        checked.append(host)
        return ["127.0.0.1"]

    url = f"http://hooks.mailsift.test:{receiver.port}/hook"
    result = _send(_config(tmp_path, url, allow_private=True), resolver=resolver)

    assert result.delivered
    assert checked == ["hooks.mailsift.test"]
    assert receiver.requests[0].headers["Host"] == f"hooks.mailsift.test:{receiver.port}"


@pytest.mark.parametrize(
    "url", ["ftp://example.com/hook", "file:///etc/passwd", "gopher://example.com/", "example.com"]
)
def test_non_http_scheme_is_refused(tmp_path, url):
    result = _send(_config(tmp_path, url, allow_private=True))

    assert not result.delivered
    (line,) = read_delivery_log(tmp_path)
    assert line["outcome"] == "refused"
    assert "is not http(s)" in line["error"]


def test_secret_and_body_never_reach_the_delivery_log(tmp_path, receiver):
    receiver.script = [500, 200]
    url = f"http://user:url-password@127.0.0.1:{receiver.port}/hook?token=url-token"
    summary = {**SUMMARY, "sample_invalid": "alice@example.com"}

    result = send_event(
        "list.completed",
        _config(tmp_path, url),
        list_id="l1",
        run_id="r1",
        summary=summary,
        locations=LOCATIONS,
        policy=QUICK,
    )

    assert result.delivered
    assert b"alice@example.com" in receiver.requests[0].body  # the receiver did get the body
    log_text = delivery_log_path(tmp_path).read_text(encoding="utf-8")
    assert len(log_text.splitlines()) == 2
    signature = receiver.requests[0].headers["X-Mailsift-Signature"]
    for leaked in (SECRET, signature, "alice@example.com", "url-password", "url-token"):
        assert leaked not in log_text
    assert read_delivery_log(tmp_path)[0]["url"] == f"http://127.0.0.1:{receiver.port}/hook"


def test_missing_secret_refuses_to_send_unsigned(tmp_path, receiver):
    result = _send(_config(tmp_path, receiver.url, secret=None))

    assert not result.delivered
    assert receiver.requests == []
    assert "MAILSIFT_WEBHOOK_SECRET" in (result.error or "")
    assert read_delivery_log(tmp_path)[0]["outcome"] == "refused"


def test_no_webhook_url_is_skipped_silently(tmp_path):
    result = _send(Config(data_dir=tmp_path))

    assert result.skipped and not result.delivered
    assert read_delivery_log(tmp_path) == []


def test_allow_private_flag_defaults_off_and_reads_the_environment(tmp_path):
    assert Config().webhook_allow_private is False
    env = {"MAILSIFT_HOME": str(tmp_path), "MAILSIFT_WEBHOOK_ALLOW_PRIVATE": "true"}
    assert load_config(env=env).webhook_allow_private is True


def test_signature_is_seed_002s_hex_hmac_sha256():
    # Reference value from `printf '{}' | openssl dgst -sha256 -hmac key`.
    expected = "sha256=a777724d943eb48dc69bca8a4a6d57a04db3f9ec7e1de4e581e860265bdf3032"
    assert sign(b"{}", "key") == expected
    assert verify_signature(b"{}", expected, SecretStr("key"))


@pytest.mark.parametrize(
    ("address", "category"),
    [
        ("8.8.8.8", None),
        ("2606:4700::1111", None),
        ("100.64.0.1", "non-global"),
        ("224.0.0.251", "multicast"),
        ("::ffff:10.0.0.1", "private"),
        ("2002:7f00:1::", "loopback"),  # 6to4 wrapping 127.0.0.1
        ("fe80::1", "link-local"),
    ],
)
def test_address_categories(address, category):
    assert address_category(ipaddress.ip_address(address)) == category


# -- HTTPS: the pinned connection still checks the certificate against the URL's host name --


def _certificate_chain(tmp_path: Path, dns_name: str) -> tuple[Path, Path, Path]:
    x509 = pytest.importorskip("cryptography.x509")
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mailsift test CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf_cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, dns_name)]))
        .issuer_name(ca_name)
        .public_key(leaf_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(dns_name)]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    ca_path, cert_path, key_path = tmp_path / "ca.pem", tmp_path / "leaf.pem", tmp_path / "key.pem"
    ca_path.write_bytes(ca_cert.public_bytes(pem))
    cert_path.write_bytes(leaf_cert.public_bytes(pem))
    key_path.write_bytes(
        leaf_key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return ca_path, cert_path, key_path


@pytest.fixture
def tls_receiver(tmp_path) -> Iterator[tuple[Receiver, ssl.SSLContext]]:
    ca_path, cert_path, key_path = _certificate_chain(tmp_path, "hooks.mailsift.test")
    receiver_of: dict[str, Receiver] = {}
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(receiver_of))
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(cert_path, key_path)
    server.socket = server_context.wrap_socket(server.socket, server_side=True)
    port = server.server_address[1]
    receiver_of["it"] = Receiver(url=f"https://hooks.mailsift.test:{port}/hook", port=port)
    client_context = ssl.create_default_context(cafile=str(ca_path))
    with _serving(server):
        yield receiver_of["it"], client_context


def _loopback(host: str, port: int) -> list[str]:
    return ["127.0.0.1"]


def test_https_to_a_pinned_address_verifies_the_certificate_for_the_host_name(
    tmp_path, tls_receiver
):
    receiver, client_context = tls_receiver

    result = _send(_config(tmp_path, receiver.url), resolver=_loopback, ssl_context=client_context)

    assert result.delivered, result.error
    assert receiver.requests[0].headers["Host"] == f"hooks.mailsift.test:{receiver.port}"


def test_https_certificate_for_another_name_is_rejected(tmp_path, tls_receiver):
    receiver, client_context = tls_receiver
    url = f"https://other.mailsift.test:{receiver.port}/hook"
    policy = DeliveryPolicy(max_attempts=1, timeout_s=2.0)

    result = _send(
        _config(tmp_path, url), resolver=_loopback, ssl_context=client_context, policy=policy
    )

    assert not result.delivered
    assert receiver.requests == []
    assert "CERTIFICATE_VERIFY_FAILED" in (result.error or "")
