"""Real alert receivers on loopback for tests: an HTTP webhook receiver and an aiosmtpd SMTP server.

Use the fixtures ``webhook_receiver`` and ``smtp_receiver`` (registered in tests/conftest.py); each
records what arrived with the arrival time so tests can measure alert latency."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller


@dataclass
class Received:
    at: float
    body: Any


@dataclass
class WebhookReceiver:
    url: str
    received: list[Received] = field(default_factory=list)
    status: int = 200

    def wait(self, count: int = 1, timeout: float = 60.0) -> list[Received]:
        """Block until ``count`` posts arrived (or the timeout passed) and return what arrived."""
        deadline = time.monotonic() + timeout
        while len(self.received) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return list(self.received)


@dataclass
class SmtpReceiver:
    host: str
    port: int
    received: list[Received] = field(default_factory=list)

    def wait(self, count: int = 1, timeout: float = 60.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        while len(self.received) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return list(self.received)


def start_webhook_receiver() -> tuple[WebhookReceiver, ThreadingHTTPServer]:
    receiver = WebhookReceiver(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            raw = self.rfile.read(length)
            try:
                body: Any = json.loads(raw)
            except ValueError:
                body = raw.decode("utf-8", "replace")
            receiver.received.append(Received(at=time.time(), body=body))
            self.send_response(receiver.status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return receiver, server


class _Handler:
    def __init__(self, receiver: SmtpReceiver) -> None:
        self.receiver = receiver

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        msg: Message = message_from_bytes(envelope.original_content or envelope.content)
        self.receiver.received.append(Received(at=time.time(), body=msg))
        return "250 Message accepted for delivery"


def start_smtp_receiver() -> tuple[SmtpReceiver, Controller]:
    with socket.socket() as probe:  # aiosmtpd's readiness check cannot use port 0
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    receiver = SmtpReceiver(host="127.0.0.1", port=port)
    controller = Controller(_Handler(receiver), hostname="127.0.0.1", port=port)
    controller.start()
    return receiver, controller


def webhook_fixture() -> Iterator[WebhookReceiver]:
    receiver, server = start_webhook_receiver()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()


def smtp_fixture() -> Iterator[SmtpReceiver]:
    receiver, controller = start_smtp_receiver()
    try:
        yield receiver
    finally:
        controller.stop()
