"""A small TCP proxy on loopback that forwards bytes and, when armed, flips one byte or resets the connection
after N bytes, in the upload (client -> server) or download (server -> client) direction."""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from dataclasses import dataclass, field
from enum import StrEnum


class Direction(StrEnum):
    UPLOAD = "upload"
    DOWNLOAD = "download"


class Fault(StrEnum):
    FLIP = "flip"
    RESET = "reset"


@dataclass
class Plan:
    """Apply ``fault`` in ``direction`` once the stream has carried ``after`` bytes, on ``times`` connections."""

    fault: Fault
    direction: Direction
    after: int
    times: int = 1
    fired: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def claim(self) -> bool:
        with self.lock:
            if self.fired >= self.times:
                return False
            self.fired += 1
            return True


class FaultProxy:
    """``with FaultProxy(host, port) as p: p.arm(Plan(...)); use p.endpoint``."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.plan: Plan | None = None
        self._server = socket.socket()
        self._server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._server.bind(("127.0.0.1", 0))
        self._server.listen(64)
        self.endpoint = f"http://127.0.0.1:{self._server.getsockname()[1]}"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._server.close()

    def arm(self, plan: Plan) -> None:
        self.plan = plan

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            plan = self.plan
            claimed: dict[Direction, bool] = {Direction.UPLOAD: False, Direction.DOWNLOAD: False}
            for d, src, dst in ((Direction.UPLOAD, client, upstream), (Direction.DOWNLOAD, upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst, d, plan, claimed), daemon=True).start()

    def _pump(
        self,
        src: socket.socket,
        dst: socket.socket,
        direction: Direction,
        plan: Plan | None,
        claimed: dict[Direction, bool],
    ) -> None:
        seen = 0
        active = plan is not None and plan.direction is direction
        try:
            while chunk := src.recv(65536):
                buf = bytearray(chunk)
                if active and plan is not None and seen + len(buf) > plan.after:
                    if not claimed[direction]:
                        claimed[direction] = plan.claim()
                    if claimed[direction]:
                        active = False
                        pos = plan.after - seen
                        if plan.fault is Fault.FLIP:
                            buf[pos] ^= 0xFF
                        else:
                            dst.sendall(bytes(buf[:pos]))
                            for s in (src, dst):  # RST rather than FIN: an abrupt reset
                                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                                s.close()
                            return
                    else:
                        active = False
                seen += len(buf)
                dst.sendall(bytes(buf))
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
            src.close()  # each socket is the source of exactly one pump
