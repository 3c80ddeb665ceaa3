"""A partner's webhook receiver on 127.0.0.1 (stdlib HTTP): verifies signatures as docs/delivery.md says,
rejects tampered bodies and stale timestamps, drops duplicates by idempotency key, and fails on demand."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TOLERANCE_SECONDS = 300


def verify(secret: bytes, timestamp: str, body: bytes, signature: str, now: float) -> bool:
    """The partner's check: a fresh timestamp and v1=HMAC-SHA256(secret, timestamp + "." + body)."""
    if not timestamp.isdigit() or abs(now - int(timestamp)) > TOLERANCE_SECONDS:
        return False
    expected = "v1=" + hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, signature)


@dataclass
class Receiver:
    """What the receiver saw; ``fail_next`` statuses are answered (in order) before it accepts anything."""

    secret: bytes
    url: str = ""
    fail_next: list[int] = field(default_factory=list)
    requests: list[dict] = field(default_factory=list)  # every request: headers, body, status answered
    accepted: list[dict] = field(default_factory=list)  # notices processed (first copy of each key)
    seen_keys: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def handle(self, headers: dict[str, str], body: bytes) -> int:
        with self.lock:
            if self.fail_next:
                status = self.fail_next.pop(0)
            elif not verify(
                self.secret,
                headers.get("x-tracedrop-timestamp", ""),
                body,
                headers.get("x-tracedrop-signature", ""),
                time.time(),
            ):
                status = 401
            else:
                status = 200
                key = headers["x-tracedrop-idempotency-key"]
                if key not in self.seen_keys:
                    self.seen_keys.add(key)
                    self.accepted.append(json.loads(body))
            self.requests.append({"headers": headers, "body": body, "status": status})
            return status


@contextmanager
def webhook_receiver(secret: bytes) -> Iterator[Receiver]:
    receiver = Receiver(secret)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            status = receiver.handle({k.lower(): v for k, v in self.headers.items()}, body)
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/tracedrop"
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
