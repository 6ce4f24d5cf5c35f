"""Signed completion notifications: tell the user's endpoint that a list finished or failed.

Seeds 002 and 003 push a signed POST when a batch completes; this is the same for our runs.

Wire format (what receivers rely on)
- `POST <webhook_url>`, `Content-Type: application/json`, a compact UTF-8 JSON body:
  `event` (`list.completed` | `list.failed`), `event_id`, `created_at`, `list_id`, `run_id`,
  `started_at`, `finished_at`, `summary` (the run's figures), `locations` (result files),
  `error` (one line, for `list.failed`). Times are ISO 8601 UTC (`2026-04-05T14:22:03.411Z`).
- `X-Mailsift-Signature: sha256=<hex HMAC-SHA256(secret, exact raw body bytes)>`, seed 002's
  scheme, so receivers written for it port over. The secret is `MAILSIFT_WEBHOOK_SECRET`.
- `X-Mailsift-Event`, `X-Mailsift-Event-Id`, `X-Mailsift-Timestamp` (unix seconds of `created_at`)
  and `X-Mailsift-Delivery-Attempt`. Retries resend the identical body, so id, timestamp and
  signature repeat on every attempt of one event.
- Only the body is signed. `event_id` and `created_at` are inside it, so a receiver protects
  itself with signed values: `verify_signature(raw_body, header, secret)` first, then reject a
  `created_at` older than its tolerance (all retries of the default policy finish within ~1 min),
  then drop an `event_id` it has already seen. The headers are unauthenticated conveniences.

Delivery: up to `DeliveryPolicy.max_attempts` attempts, waiting 1 s, 2 s, 4 s, ... between them;
connection errors, timeouts, 5xx and 429 are retried, any other answer is final. Every attempt is
one line in `<data_dir>/webhooks/deliveries.jsonl` (time, ids, url without credentials or query,
address, attempt, status code or error, duration, outcome): never the secret, never the body.

SSRF guard: only http/https; the host is resolved and the request is refused (logged, nothing
sent) when any address is loopback, private, link-local, multicast, reserved, unspecified or
otherwise not globally routable, unless `webhook_allow_private` is set (multicast and unspecified
are refused even then: neither is ever a receiver). IPv4 embedded in IPv6 (`::ffff:a.b.c.d`, 6to4)
is judged by its IPv4 address.

DNS rebinding: each attempt resolves once, checks every address, and connects to a checked address
itself: the URL's host is replaced by the IP while the `Host` header, TLS SNI and certificate check
keep the original name (httpx's `sni_hostname` extension). No second lookup happens that could
answer differently. Proxies from the environment and redirects are not used, since either would
send the request somewhere that was never checked.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import socket
import ssl
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Literal, NamedTuple, get_args

import httpx
from pydantic import SecretStr

from engine.config import Config
from engine.errors import InputError

EventName = Literal["list.completed", "list.failed"]
EVENT_NAMES: Final[frozenset[str]] = frozenset(get_args(EventName))
Outcome = Literal["delivered", "retry", "failed", "refused"]
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Sequence[str]]

SIGNATURE_HEADER: Final = "X-Mailsift-Signature"
EVENT_HEADER: Final = "X-Mailsift-Event"
EVENT_ID_HEADER: Final = "X-Mailsift-Event-Id"
TIMESTAMP_HEADER: Final = "X-Mailsift-Timestamp"
ATTEMPT_HEADER: Final = "X-Mailsift-Delivery-Attempt"
SIGNATURE_PREFIX: Final = "sha256="
USER_AGENT: Final = "mailsift-webhook/1"
DELIVERY_LOG: Final = Path("webhooks") / "deliveries.jsonl"
ALLOWED_SCHEMES: Final = frozenset({"http", "https"})
# 429 asks us to slow down, 5xx is the receiver's own trouble: both may pass. Any other 4xx says
# the request itself is wrong (bad URL, bad signature), and resending it cannot help.
RETRYABLE_STATUS: Final = frozenset({429, *range(500, 600)})
# Refused even with webhook_allow_private: no HTTP receiver ever listens on these.
ALWAYS_REFUSED: Final = frozenset({"unspecified", "multicast"})
_ADDRESS_CATEGORIES: Final[tuple[tuple[str, Callable[[IPAddress], bool]], ...]] = (
    ("unspecified", lambda ip: ip.is_unspecified),
    ("loopback", lambda ip: ip.is_loopback),
    ("link-local", lambda ip: ip.is_link_local),
    ("multicast", lambda ip: ip.is_multicast),
    ("private", lambda ip: ip.is_private),
    ("reserved", lambda ip: ip.is_reserved),
    # e.g. 100.64.0.0/10 (carrier-grade NAT): neither private nor reachable from the internet.
    ("non-global", lambda ip: not ip.is_global),
)


class UnsafeWebhookURL(InputError):
    """The webhook URL may not be called: bad scheme, no host, or a non-public address."""


@dataclass(frozen=True)
class DeliveryPolicy:
    """How hard to try. The default is seed 002's: three retries after 1 s, 2 s and 4 s."""

    max_attempts: int = 4
    first_delay_s: float = 1.0
    backoff_factor: float = 2.0
    max_delay_s: float = 60.0
    timeout_s: float = 10.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if min(self.first_delay_s, self.max_delay_s, self.timeout_s) < 0:
            raise ValueError("delays and timeout must not be negative")

    def delay_before(self, attempt: int) -> float:
        """Seconds to wait before `attempt` (1-based): 0, then first_delay_s doubling per retry."""
        if attempt <= 1:
            return 0.0
        return min(self.first_delay_s * self.backoff_factor ** (attempt - 2), self.max_delay_s)


@dataclass(frozen=True)
class WebhookEvent:
    """One notification; `body()` is the exact bytes that are signed and sent on every attempt."""

    event: EventName
    event_id: str
    created_at: datetime
    list_id: str
    run_id: str
    summary: Mapping[str, Any]
    locations: Mapping[str, str]
    started_at: datetime | None = None
    finished_at: datetime | None = None
    error: str | None = None

    def payload(self) -> dict[str, Any]:
        return {
            "event": self.event,
            "event_id": self.event_id,
            "created_at": _iso(self.created_at),
            "list_id": self.list_id,
            "run_id": self.run_id,
            "started_at": _iso(self.started_at),
            "finished_at": _iso(self.finished_at),
            "summary": dict(self.summary),
            "locations": dict(self.locations),
            "error": self.error,
        }

    def body(self) -> bytes:
        # allow_nan=False: NaN is not JSON, and a receiver's strict parser would reject the event.
        text = json.dumps(
            self.payload(),
            separators=(",", ":"),
            ensure_ascii=False,
            allow_nan=False,
            default=_json_default,
        )
        return text.encode("utf-8")


def build_event(
    event: EventName,
    *,
    list_id: str,
    run_id: str,
    summary: Mapping[str, Any],
    locations: Mapping[str, str | Path],
    started_at: datetime | None = None,
    finished_at: datetime | None = None,
    error: str | None = None,
    now: datetime | None = None,
) -> WebhookEvent:
    """A new event with a fresh id; `locations` maps a name (e.g. `results_csv`) to a path/URI."""
    if event not in EVENT_NAMES:
        raise ValueError(f"unknown webhook event {event!r}; expected one of {sorted(EVENT_NAMES)}")
    return WebhookEvent(
        event=event,
        event_id=f"evt_{uuid.uuid4().hex}",
        created_at=now or datetime.now(UTC),
        list_id=list_id,
        run_id=run_id,
        summary=dict(summary),
        locations={name: str(where) for name, where in locations.items()},
        started_at=started_at,
        finished_at=finished_at,
        error=" ".join(error.split()) if error else None,
    )


def sign(body: bytes, secret: str | bytes | SecretStr) -> str:
    """The `X-Mailsift-Signature` value for `body`."""
    digest = hmac.new(_secret_bytes(secret), body, hashlib.sha256).hexdigest()
    return SIGNATURE_PREFIX + digest


def verify_signature(body: bytes, header: str | None, secret: str | bytes | SecretStr) -> bool:
    """True when `header` is the signature of the raw `body` under `secret` (constant time)."""
    if not header:
        return False
    expected = sign(body, secret).encode("ascii")
    return hmac.compare_digest(header.strip().encode("ascii", "replace"), expected)


@dataclass(frozen=True)
class WebhookTarget:
    """A checked destination: the URL and the addresses it may be connected to, in order."""

    url: httpx.URL
    addresses: tuple[str, ...]


def resolve_host(host: str, port: int) -> list[str]:
    """The system resolver's addresses for `host`, de-duplicated, in its order of preference."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def address_category(address: IPAddress) -> str | None:
    """Why `address` is not a public unicast address (e.g. "loopback"), or None when it is."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is not None and (category := address_category(embedded)):
            return category
    for category, applies in _ADDRESS_CATEGORIES:
        if applies(address):
            return category
    return None


def check_webhook_url(
    url: str, *, allow_private: bool = False, resolver: Resolver = resolve_host
) -> WebhookTarget:
    """Resolve `url`'s host and check every address; raise UnsafeWebhookURL when one is unsafe.

    Resolution failures (OSError) propagate: they may be temporary and are retried by the caller.
    """
    shown = redact_url(url)
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError) as error:
        raise UnsafeWebhookURL(f"webhook URL {shown} is not a valid URL ({error})") from error
    if parsed.scheme not in ALLOWED_SCHEMES:
        scheme = parsed.scheme or "(none)"
        raise UnsafeWebhookURL(f"webhook URL {shown} refused: scheme {scheme!r} is not http(s)")
    host = parsed.raw_host.decode("ascii")
    if not host:
        raise UnsafeWebhookURL(f"webhook URL {shown} refused: it names no host")
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    addresses = [ipaddress.ip_address(raw) for raw in resolver(host, port)]
    if not addresses:
        raise OSError(f"{host} resolved to no address")
    for address in addresses:
        category = address_category(address)
        if category is None or (allow_private and category not in ALWAYS_REFUSED):
            continue
        what = f"{host} is" if _is_ip(host) else f"{host} resolves to {address},"
        article = "an" if category[0] in "aeiou" else "a"
        hint = "" if category in ALWAYS_REFUSED else " (set webhook_allow_private to allow it)"
        raise UnsafeWebhookURL(
            f"webhook URL {shown} refused: {what} {article} {category} address{hint}"
        )
    return WebhookTarget(url=parsed, addresses=tuple(str(address) for address in addresses))


def redact_url(url: str) -> str:
    """`url` without credentials, query or fragment, which may carry tokens: safe for logs."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError):
        return "<invalid url>"
    netloc = parsed.netloc.decode("ascii")
    return f"{parsed.scheme}://{netloc}{parsed.path}" if netloc else "<url without a host>"


@dataclass(frozen=True)
class DeliveryAttempt:
    """One try, as written to the delivery log."""

    attempt: int
    at: datetime
    outcome: Outcome
    address: str | None = None
    status_code: int | None = None
    error: str | None = None
    duration_s: float = 0.0


@dataclass(frozen=True)
class DeliveryResult:
    """What happened to one event. `skipped` means no webhook URL is configured."""

    event: EventName
    event_id: str
    url: str | None
    delivered: bool
    attempts: tuple[DeliveryAttempt, ...] = field(default_factory=tuple)
    error: str | None = None
    skipped: bool = False

    @property
    def status_code(self) -> int | None:
        return self.attempts[-1].status_code if self.attempts else None


def delivery_log_path(data_dir: Path) -> Path:
    return Path(data_dir) / DELIVERY_LOG


def read_delivery_log(data_dir: Path) -> list[dict[str, Any]]:
    """Every logged attempt, oldest first; empty when nothing was ever sent."""
    path = delivery_log_path(data_dir)
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def send_event(
    event: EventName,
    config: Config,
    *,
    list_id: str,
    run_id: str,
    summary: Mapping[str, Any],
    locations: Mapping[str, str | Path],
    started_at: datetime | None = None,
    finished_at: datetime | None = None,
    error: str | None = None,
    policy: DeliveryPolicy | None = None,
    resolver: Resolver = resolve_host,
    ssl_context: ssl.SSLContext | None = None,
) -> DeliveryResult:
    """Build `event` for a run and deliver it to `config.webhook_url`. Never raises on delivery."""
    webhook_event = build_event(
        event,
        list_id=list_id,
        run_id=run_id,
        summary=summary,
        locations=locations,
        started_at=started_at,
        finished_at=finished_at,
        error=error,
    )
    return deliver(webhook_event, config, policy=policy, resolver=resolver, ssl_context=ssl_context)


def deliver(
    webhook_event: WebhookEvent,
    config: Config,
    *,
    policy: DeliveryPolicy | None = None,
    resolver: Resolver = resolve_host,
    ssl_context: ssl.SSLContext | None = None,
) -> DeliveryResult:
    """POST a built event with retries; every attempt (or refusal) goes to the delivery log.

    Failures are returned, not raised: a missed notification must not fail the run it reports on.
    """
    policy = policy or DeliveryPolicy()
    if not config.webhook_url:
        return DeliveryResult(
            event=webhook_event.event,
            event_id=webhook_event.event_id,
            url=None,
            delivered=False,
            error="no webhook_url configured",
            skipped=True,
        )
    delivery = _Delivery(webhook_event, config, policy)
    if config.webhook_secret is None:
        return delivery.refuse(
            1, "webhook_secret is not set (export MAILSIFT_WEBHOOK_SECRET); nothing was sent"
        )
    body = webhook_event.body()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        EVENT_HEADER: webhook_event.event,
        EVENT_ID_HEADER: webhook_event.event_id,
        TIMESTAMP_HEADER: str(int(webhook_event.created_at.timestamp())),
        SIGNATURE_HEADER: sign(body, config.webhook_secret),
    }
    with httpx.Client(
        timeout=policy.timeout_s,
        follow_redirects=False,
        trust_env=False,
        verify=ssl_context if ssl_context is not None else True,
    ) as client:
        for attempt in range(1, policy.max_attempts + 1):
            time.sleep(delivery.wait_before(attempt))
            started = time.monotonic()
            try:
                target = check_webhook_url(
                    config.webhook_url,
                    allow_private=config.webhook_allow_private,
                    resolver=resolver,
                )
            except UnsafeWebhookURL as refusal:
                return delivery.refuse(attempt, str(refusal))
            except (OSError, UnicodeError) as lookup_error:
                delivery.record(
                    attempt, started, error=f"could not resolve host: {_one_line(lookup_error)}"
                )
                continue
            answer = _post(client, target, body, {**headers, ATTEMPT_HEADER: str(attempt)})
            delivery.record(
                attempt,
                started,
                address=answer.address,
                status=answer.status_code,
                error=answer.error,
                retry_after_s=answer.retry_after_s,
            )
            if delivery.finished:
                break
    return delivery.result()


class _Delivery:
    """The attempts of one event so far, and the log they are written to."""

    def __init__(self, webhook_event: WebhookEvent, config: Config, policy: DeliveryPolicy) -> None:
        self.event = webhook_event
        self.policy = policy
        self.url = redact_url(config.webhook_url or "")
        self.log_path = delivery_log_path(config.data_dir)
        self.attempts: list[DeliveryAttempt] = []
        self.finished = False
        self._retry_after_s: float | None = None

    def wait_before(self, attempt: int) -> float:
        delay = self.policy.delay_before(attempt)
        if self._retry_after_s is not None and attempt > 1:
            delay = max(delay, min(self._retry_after_s, self.policy.max_delay_s))
        return delay

    def record(
        self,
        attempt: int,
        started: float,
        *,
        address: str | None = None,
        status: int | None = None,
        error: str | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        self._retry_after_s = retry_after_s
        if status is not None and 200 <= status < 300:
            outcome: Outcome = "delivered"
        elif status is not None and status not in RETRYABLE_STATUS:
            outcome = "failed"
            redirect = " (redirects are not followed)" if 300 <= status < 400 else ""
            error = f"receiver answered HTTP {status}{redirect}"
        elif attempt >= self.policy.max_attempts:
            outcome = "failed"
        else:
            outcome = "retry"
        if status is not None and status in RETRYABLE_STATUS:
            error = f"receiver answered HTTP {status}"
        self.finished = outcome != "retry"
        self._append(
            DeliveryAttempt(
                attempt=attempt,
                at=datetime.now(UTC),
                outcome=outcome,
                address=address,
                status_code=status,
                error=error,
                duration_s=time.monotonic() - started,
            )
        )

    def refuse(self, attempt: int, reason: str) -> DeliveryResult:
        self.finished = True
        self._append(
            DeliveryAttempt(attempt=attempt, at=datetime.now(UTC), outcome="refused", error=reason)
        )
        return self.result()

    def result(self) -> DeliveryResult:
        last = self.attempts[-1] if self.attempts else None
        delivered = last is not None and last.outcome == "delivered"
        error = None
        if last is not None and not delivered:
            error = last.error
            if last.outcome == "failed" and last.attempt >= self.policy.max_attempts > 1:
                error = f"gave up after {last.attempt} attempts; last: {last.error}"
        return DeliveryResult(
            event=self.event.event,
            event_id=self.event.event_id,
            url=self.url,
            delivered=delivered,
            attempts=tuple(self.attempts),
            error=error,
        )

    def _append(self, attempt: DeliveryAttempt) -> None:
        self.attempts.append(attempt)
        line = {
            "time": _iso(attempt.at),
            "event": self.event.event,
            "event_id": self.event.event_id,
            "list_id": self.event.list_id,
            "run_id": self.event.run_id,
            "url": self.url,
            "address": attempt.address,
            "attempt": attempt.attempt,
            "max_attempts": self.policy.max_attempts,
            "outcome": attempt.outcome,
            "status_code": attempt.status_code,
            "error": attempt.error,
            "duration_ms": round(attempt.duration_s * 1000, 1),
        }
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        # One write per line in append mode: concurrent runs interleave whole lines, not bytes.
        with self.log_path.open("a", encoding="utf-8") as log:
            log.write(json.dumps(line, ensure_ascii=False) + "\n")


class _Answer(NamedTuple):
    address: str | None
    status_code: int | None = None
    error: str | None = None
    retry_after_s: float | None = None


def _post(
    client: httpx.Client, target: WebhookTarget, body: bytes, headers: Mapping[str, str]
) -> _Answer:
    """POST to the first checked address that accepts a connection."""
    url = target.url
    host = url.raw_host.decode("ascii")
    pinned_headers = {**headers, "Host": url.netloc.decode("ascii")}
    extensions = {"sni_hostname": host} if url.scheme == "https" and not _is_ip(host) else {}
    address: str | None = None
    failure = "no address to connect to"
    for address in target.addresses:
        try:
            request = client.build_request(
                "POST",
                url.copy_with(host=address),
                content=body,
                headers=pinned_headers,
                extensions=extensions,
            )
            # stream=True: only the status matters; a huge or endless reply body is never read.
            response = client.send(request, stream=True)
        except (httpx.ConnectError, httpx.ConnectTimeout) as error:
            failure = f"{type(error).__name__}: {_one_line(error)}"
            continue  # the next address may answer, as a browser would try it
        except (httpx.TransportError, httpx.InvalidURL) as error:
            return _Answer(address, error=f"{type(error).__name__}: {_one_line(error)}")
        response.close()
        return _Answer(
            address, response.status_code, retry_after_s=_retry_after_s(response.headers)
        )
    return _Answer(address, error=failure)


def _retry_after_s(headers: httpx.Headers) -> float | None:
    """A 429/503's `Retry-After` in seconds (RFC 9110 §10.2.3); the HTTP-date form is ignored."""
    try:
        seconds = float(headers.get("Retry-After", ""))
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def _secret_bytes(secret: str | bytes | SecretStr) -> bytes:
    if isinstance(secret, SecretStr):
        secret = secret.get_secret_value()
    return secret.encode("utf-8") if isinstance(secret, str) else secret


def _iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _json_default(value: object) -> Any:
    if isinstance(value, datetime):
        return _iso(value)
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"webhook payload value of type {type(value).__name__} is not JSON")


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__
