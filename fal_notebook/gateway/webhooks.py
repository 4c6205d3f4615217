"""Webhooks as fal delivers them (docs/fal-conformance.md, "Webhooks"): a queued request submitted with
``?fal_webhook=<url>`` is POSTed there once it completes, with fal's payload and signature headers.

The signature is ED25519, by a key of the gateway's own (``<FAL_NOTEBOOK_HOME>/gateway/webhook-key.pem``)
whose public half the gateway publishes as a JWKS (``GET /.well-known/jwks.json``), as fal publishes
its own. A delivery that fails (no 2xx answer) is tried again on fal's schedule scaled down (ten
retries, doubling, over about ten seconds instead of two hours); every attempt is written to the
app's log. Deliveries are background tasks of the gateway's supervisor: they never change the request's result.

Deliveries are durable, as the queue is: the store keeps each one's attempt count (counted before
the attempt is made) and its end (delivered, or given up and why), and a gateway that starts resumes
every delivery left unfinished, where its schedule stood. The guarantee is fal's, at least once: an
attempt the receiver took but whose answer the gateway did not live to record is made again, so a
receiver de-duplicates by ``X-Fal-Webhook-Request-Id``.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from .. import wire
from .paths import gateway_dir
from .store import Store
from .supervisor import Clock, Supervisor

#: fal retries a failed delivery 10 times over about 2 hours; the gateway keeps the count and the
#: doubling, scaled down to about 10 s in all.
RETRY_DELAYS = tuple(0.01 * 2**n for n in range(10))
#: fal gives a delivery 15 s to answer.
ATTEMPT_TIMEOUT = 15.0
#: Seconds to connect to a receiver, and how many attempts are under way at once (webhooks' share of
#: the gateway's outbound connections: probes and health checks have their own).
CONNECT_TIMEOUT = 5.0
DELIVERIES = 16
#: The longest webhook URL taken (browsers and servers commonly stop near 2,000 characters).
MAX_URL = 2048


@dataclass(frozen=True)
class Delivery:
    """One completed request to announce at ``url``."""

    url: str
    request_id: str
    gateway_request_id: str
    user_id: str
    status: int
    body: bytes
    #: Writes a line to the app's log.
    log: Callable[[str], None]
    #: Attempts made already (by a gateway that stopped before the delivery ended).
    attempts: int = 0


def signing_key() -> Ed25519PrivateKey:
    """The gateway's webhook signing key, created on first use, readable only by the user."""
    path = gateway_dir() / "webhook-key.pem"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        assert isinstance(key, Ed25519PrivateKey)
        return key
    key = Ed25519PrivateKey.generate()
    with os.fdopen(fd, "wb") as f:
        f.write(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
    return key


def _raw(public: Ed25519PublicKey) -> bytes:
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwks(key: Ed25519PrivateKey) -> dict[str, list[dict[str, str]]]:
    """The public half of ``key`` as a JSON Web Key Set (RFC 7517, OKP/Ed25519)."""
    raw = _raw(key.public_key())
    kid = hashlib.sha256(raw).hexdigest()[:16]
    return {"keys": [{"kty": "OKP", "crv": "Ed25519", "x": _b64url(raw), "kid": kid, "use": "sig", "alg": "EdDSA"}]}


def signed_headers(key: Ed25519PrivateKey, request_id: str, user_id: str, body: bytes, now: float) -> dict[str, str]:
    """fal's webhook headers for ``body``, signed at ``now``."""
    timestamp = str(int(now))
    signature = key.sign(wire.webhook_message(request_id, user_id, timestamp, body)).hex()
    return {
        "Content-Type": "application/json",
        wire.WEBHOOK_REQUEST_ID: request_id,
        wire.WEBHOOK_USER_ID: user_id,
        wire.WEBHOOK_TIMESTAMP: timestamp,
        wire.WEBHOOK_SIGNATURE: signature,
    }


def verify(headers: Mapping[str, str], body: bytes, keys: dict, *, now: float | None = None) -> bool:
    """Whether a webhook is signed by one of the JWKS ``keys`` within fal's timestamp tolerance: what a
    receiver does, with fal's JWKS or the gateway's."""
    found = {k.lower(): v for k, v in headers.items()}
    names = (wire.WEBHOOK_REQUEST_ID, wire.WEBHOOK_USER_ID, wire.WEBHOOK_TIMESTAMP, wire.WEBHOOK_SIGNATURE)
    request_id, user_id, timestamp, signature = (found.get(name.lower(), "") for name in names)
    if not (request_id and user_id and signature and timestamp.isdigit()):
        return False
    if abs((time.time() if now is None else now) - int(timestamp)) > wire.WEBHOOK_TIMESTAMP_TOLERANCE:
        return False
    try:
        signed = bytes.fromhex(signature)
    except ValueError:
        return False
    message = wire.webhook_message(request_id, user_id, timestamp, body)
    for jwk in keys.get("keys", []):
        raw = base64.urlsafe_b64decode(jwk.get("x", "") + "==")
        try:
            Ed25519PublicKey.from_public_bytes(raw).verify(signed, message)
        except (InvalidSignature, ValueError):
            continue
        return True
    return False


def check_url(url: str) -> str | None:
    """Why ``url`` cannot take webhooks (None: it can): an absolute http(s) URL with a host (and a
    port from 1 to 65535, if it names one) that the gateway's HTTP client can send to."""
    try:
        parts = urlsplit(url)
        scheme, port, host = parts.scheme, parts.port, httpx.URL(url).host  # the host is decoded (IDNA) as read
    except (ValueError, httpx.InvalidURL):  # an unclosed [IPv6], a port out of range, a bad IDNA name
        scheme, port, host = "", None, ""
    if len(url) > MAX_URL or scheme not in ("http", "https") or not host or port == 0:
        return (
            f"{wire.WEBHOOK_PARAM} must be an absolute http(s) URL with a host (and a port from 1 to 65535), "
            f"at most {MAX_URL} characters; got {shown(url)!r}."
        )
    return None


def shown(url: str) -> str:
    """The URL without its query and credentials, as logs show it (a query may carry a token)."""
    try:
        parts = urlsplit(url)
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "(a URL that cannot be parsed)"
    return f"{parts.scheme}://{parts.hostname or ''}{port}{parts.path}"[:200]


class Webhooks:
    """The gateway's webhook deliveries, each a background task of the gateway's supervisor, each
    recorded in the store as it goes. They have an HTTP client of their own, with at most
    :data:`DELIVERIES` attempts under way at once (an attempt waits for its turn, then has
    :data:`ATTEMPT_TIMEOUT` seconds): receivers that never answer hold those connections and no others."""

    def __init__(
        self,
        key: Ed25519PrivateKey,
        tasks: Supervisor,
        clock: Clock,
        store: Store,
        delays: tuple[float, ...] = RETRY_DELAYS,
        deliveries: int = DELIVERIES,
    ):
        self.key, self.tasks, self.clock, self.store, self.delays = key, tasks, clock, store, delays
        timeout = httpx.Timeout(ATTEMPT_TIMEOUT, connect=CONNECT_TIMEOUT)
        self.http = httpx.AsyncClient(timeout=timeout, limits=httpx.Limits(max_connections=deliveries))
        self.turns = asyncio.Semaphore(deliveries)
        self.active: set[str] = set()

    async def aclose(self) -> None:
        await self.http.aclose()

    def deliver(self, delivery: Delivery) -> None:
        """Start (or, after a restart, resume) a delivery; one per request at a time."""
        if delivery.request_id in self.active:
            return
        self.active.add(delivery.request_id)
        task = self.tasks.spawn(self._deliver(delivery), name=f"webhook {delivery.request_id}")
        task.add_done_callback(lambda _: self.active.discard(delivery.request_id))

    async def _deliver(self, delivery: Delivery) -> None:
        body = json.dumps(
            wire.encode_webhook(delivery.request_id, delivery.gateway_request_id, delivery.status, delivery.body)
        ).encode()
        where, attempts = shown(delivery.url), 1 + len(self.delays)
        about = f"Webhook of request {delivery.request_id}:"
        refused = check_url(delivery.url)  # one a gateway of an earlier version accepted
        if refused is not None:
            delivery.log(f"{about} not sent: {refused}")
            self.store.webhook_ended(delivery.request_id, f"not sent: {refused}")
            return
        if delivery.attempts:
            then = "resuming" if delivery.attempts < attempts else "giving up: no attempt is left"
            delivery.log(f"{about} the gateway restarted after attempt {delivery.attempts}/{attempts}; {then}.")
        outcome = "was cut short by a gateway restart"
        for attempt in range(delivery.attempts + 1, attempts + 1):
            await self.clock.sleep(self.delays[attempt - 2] if attempt > 1 else 0.0)
            self.store.webhook_attempt(delivery.request_id, attempt)
            headers = signed_headers(self.key, delivery.request_id, delivery.user_id, body, self.clock.time())
            try:
                async with self.turns:
                    answer = await self.http.post(delivery.url, content=body, headers=headers, follow_redirects=False)
                outcome, delivered = f"answered {answer.status_code}", answer.is_success
            except httpx.HTTPError as exc:
                outcome, delivered = f"failed ({type(exc).__name__})", False
            if delivered:
                then = "delivered"
            elif attempt < attempts:
                then = f"retrying in {self.delays[attempt - 1]:g} s"
            else:
                then = f"giving up after {attempts} attempts"
            delivery.log(f"{about} attempt {attempt}/{attempts} to {where} {outcome}; {then}.")
            if delivered:
                self.store.webhook_ended(delivery.request_id, f"delivered: attempt {attempt} {outcome}")
                return
        self.store.webhook_ended(delivery.request_id, f"given up after {attempts} attempts: the last {outcome}")
