"""Small HTTP clients for the --serve tests and the benchmark: plain requests, an MJPEG
reader that counts frames, and a wait helper. Loopback only, every call bounded in time."""

from __future__ import annotations

import contextlib
import http.client
import json
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from typing import Any


def get(port: int, path: str, headers: dict[str, str] | None = None, method: str = "GET",
        timeout: float = 5.0) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, headers=headers or {})
        resp = conn.getresponse()
        body = resp.read() if method != "HEAD" else b""
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, body
    finally:
        conn.close()


def status(port: int, query: str = "") -> dict[str, Any]:
    code, _, body = get(port, "/status" + query)
    assert code == 200, (code, body[:200])
    return json.loads(body)


def wait_for(cond: Callable[[], Any], timeout: float, what: str, every: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            got = cond()
        except OSError:
            got = None
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(every)


def raw(port: int, data: bytes, timeout: float = 5.0) -> bytes:
    """Send bytes as they are (malformed requests) and return whatever comes back."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        out = b""
        while chunk := s.recv(65536):
            out += chunk
        return out


class StreamViewer(threading.Thread):
    """Reads /stream continuously and counts the JPEG parts, like a browser tab left open."""

    def __init__(self, port: int, query: str = "", seconds: float = 60.0) -> None:
        super().__init__(daemon=True)
        self.port, self.query, self.seconds = port, query, seconds
        self.frames = 0
        self.first_at: float | None = None
        self.last_at: float | None = None
        self.last_jpeg = b""
        self.error: str | None = None
        self._halt = threading.Event()
        self._sock: socket.socket | None = None

    def run(self) -> None:
        deadline = time.monotonic() + self.seconds
        try:
            sock = self._sock = socket.create_connection(("127.0.0.1", self.port), timeout=10)
            sock.sendall(f"GET /stream{self.query} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n".encode())
            fh = sock.makefile("rb")
            head = fh.readline()
            if b" 200 " not in head:
                self.error = head.decode(errors="replace").strip()
                return
            while not self._halt.is_set() and time.monotonic() < deadline:
                line = fh.readline()
                if not line:
                    return
                if line.lower().startswith(b"content-length:"):
                    n = int(line.split(b":")[1])
                    fh.readline()
                    self.last_jpeg = fh.read(n)
                    self.frames += 1
                    self.last_at = time.time()
                    if self.first_at is None:
                        self.first_at = self.last_at
        except (OSError, ValueError) as err:
            if not self._halt.is_set():
                self.error = repr(err)
        finally:
            if self._sock is not None:
                self._sock.close()

    def stop(self) -> None:
        self._halt.set()
        sock = self._sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        self.join(12)


def stop_gracefully(proc: subprocess.Popen[str], timeout: float = 15.0) -> str:
    """SIGTERM a running ``edgecls run`` as systemd would; kill it if it hangs. Returns stderr."""
    proc.send_signal(signal.SIGTERM)
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
    return err
