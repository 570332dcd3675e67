"""The HTTP side: parse ``--serve [HOST:]PORT``, bind before capture starts, answer four routes.

    /          the page (page.py)
    /stream    multipart/x-mixed-replace JPEGs (MJPEG), the newest frame only
    /status    JSON: current prediction, stats, history, model spec
    /metrics   Prometheus text format

stdlib ``ThreadingHTTPServer`` in a daemon thread: one thread per connection, so a viewer
that stalls holds only its own thread (and is dropped when a write times out). Only GET
and HEAD exist; nothing reads a file or writes anything. With a token, every route (the
page included) answers 401 and nothing else until the token comes as ``?token=`` or
``Authorization: Bearer``. Bound to loopback, requests must name a loopback host, so a web
page elsewhere cannot reach the preview through DNS rebinding.
"""

from __future__ import annotations

import errno
import hmac
import ipaddress
import json
import logging
import socket
import socketserver
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

from edgecls.errors import OutputError

from .page import PAGE
from .preview import Preview

log = logging.getLogger("edgecls.device")

DEFAULT_HOST = "127.0.0.1"
#: Streams at once; more get 503 (each holds a thread and a share of the uplink).
MAX_VIEWERS = 8
#: Seconds a client may take to send its request or accept a write before it is dropped.
CLIENT_TIMEOUT_S = 10.0
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
PAGE_CSP = ("default-src 'none'; img-src 'self'; connect-src 'self'; script-src 'unsafe-inline'; "
            "style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")


class ServeError(OutputError):
    """The preview server cannot start: a bad address, a port in use, a host not of this machine."""


@dataclass(frozen=True)
class Address:
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_address(text: str) -> Address:
    """``8080`` -> 127.0.0.1:8080; ``0.0.0.0:8080``; ``[::1]:8080``; ``pi.local:8080``."""
    raw = str(text).strip()
    host, sep, port = raw.rpartition(":")
    if not sep:
        host, port = DEFAULT_HOST, raw
    elif host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        host = ""  # a bare IPv6 address: ambiguous, refused below
    if not host or not port.isdigit() or int(port) > 65535:
        raise ServeError(f"--serve takes [HOST:]PORT, e.g. 8080, 0.0.0.0:8080 or [::1]:8080; got {raw!r}")
    return Address(host, int(port))


class PreviewApp(Protocol):
    """What the handler serves; :class:`edgecls.device.serve.PreviewSink` is one."""

    preview: Preview
    token: str | None

    def status(self) -> dict[str, Any]: ...

    def metrics(self) -> tuple[bytes, str]: ...


class PreviewHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    # socketserver's default backlog is 5: a burst of viewers (a dashboard wall reloading) then
    # has its SYNs dropped and retried after 1, 3, 7 s. 128 lets a burst queue instead.
    request_queue_size = 128

    def __init__(self, sockaddr: Any, family: int, app: PreviewApp, loopback: bool) -> None:
        self.address_family = family
        self.app = app
        self.loopback = loopback
        super().__init__(sockaddr, Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind looks up the host's FQDN, which can hang where DNS is absent.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = str(self.server_address[0]), int(self.server_address[1])

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that vanished or sent garbage is the client's problem: no traceback on stderr.
        log.debug("preview: request from %s failed", client_address, exc_info=True)


def bind(address: Address, app: PreviewApp) -> PreviewHTTPServer:
    """Bind and listen (not yet serving); every failure is one :class:`ServeError` line."""
    where = f"cannot serve the preview on {address}"
    try:
        infos = socket.getaddrinfo(address.host, address.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError) as err:
        raise ServeError(f"{where}: host {address.host!r} is unknown ({getattr(err, 'strerror', None) or err}); "
                         "give an address of this machine, e.g. 127.0.0.1 or 0.0.0.0") from None
    family, _, _, _, sockaddr = infos[0]
    loopback = ipaddress.ip_address(str(sockaddr[0]).split("%")[0]).is_loopback
    try:
        return PreviewHTTPServer(sockaddr, family, app, loopback)
    except OSError as err:
        if err.errno == errno.EADDRINUSE:
            why = f"port {address.port} is in use (another program, or another edgecls, listens there); choose another port"
        elif err.errno == errno.EADDRNOTAVAIL:
            why = f"{address.host} is not an address of this machine; use 0.0.0.0 for every interface or 127.0.0.1 for this machine only"
        elif err.errno == errno.EACCES:
            why = f"port {address.port} needs root (ports below 1024); use a port such as 8080"
        else:
            why = err.strerror or str(err)
        raise ServeError(f"{where}: {why}") from None


def start(server: PreviewHTTPServer) -> threading.Thread:
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.25},
                              name="edgecls-serve", daemon=True)
    thread.start()
    return thread


class Handler(BaseHTTPRequestHandler):
    server: PreviewHTTPServer
    timeout = CLIENT_TIMEOUT_S

    def version_string(self) -> str:
        return "edgecls"

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("preview: %s %s", self.address_string(), format % args)

    def do_GET(self) -> None:
        self._answer(body=True)

    def do_HEAD(self) -> None:
        self._answer(body=False)

    def _refuse_method(self) -> None:
        self._send(405, b"405 method not allowed: this server only answers GET and HEAD\n", extra={"Allow": "GET, HEAD"})

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_TRACE = do_CONNECT = _refuse_method

    # -- checks

    def _host_ok(self) -> bool:
        if not self.server.loopback:
            return True
        host = self.headers.get("Host")
        if host is None:
            return True
        name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        name = name.strip("[]").lower()
        if name in LOOPBACK_NAMES:
            return True
        try:
            return ipaddress.ip_address(name).is_loopback
        except ValueError:
            return False

    def _authorized(self, query: str) -> bool:
        token = self.server.app.token
        if not token:
            return True
        given = parse_qs(query).get("token", [""])[-1]
        auth = self.headers.get("Authorization", "")
        if auth[:7].lower() == "bearer ":
            given = auth[7:].strip()
        return hmac.compare_digest(given.encode("utf-8", "replace"), token.encode("utf-8"))

    # -- responses

    def _answer(self, body: bool) -> None:
        url = urlsplit(self.path)
        if not self._host_ok():
            self._send(403, b"403 forbidden: this preview serves loopback only; open it as http://127.0.0.1:PORT/\n", body=body)
        elif not self._authorized(url.query):
            self._send(401, b"401 unauthorized: give the token as ?token=... or an Authorization: Bearer header\n",
                       body=body, extra={"WWW-Authenticate": 'Bearer realm="edgecls"'})
        elif url.path == "/":
            self._send(200, PAGE.encode(), "text/html; charset=utf-8", body=body, extra={"Content-Security-Policy": PAGE_CSP})
        elif url.path == "/status":
            self._send(200, json.dumps(self.server.app.status()).encode(), "application/json", body=body)
        elif url.path == "/metrics":
            text, ctype = self.server.app.metrics()
            self._send(200, text, ctype, body=body)
        elif url.path == "/stream":
            self._stream(body)
        else:
            self._send(404, b"404 not found: the routes are /, /stream, /status and /metrics\n", body=body)

    def _headers(self, code: int, ctype: str, extra: dict[str, str] | None = None, length: int | None = None) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        if length is not None:
            self.send_header("Content-Length", str(length))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("X-Frame-Options", "DENY")
        self.send_header("Referrer-Policy", "no-referrer")
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        self.end_headers()

    def _send(self, code: int, data: bytes, ctype: str = "text/plain; charset=utf-8", body: bool = True,
              extra: dict[str, str] | None = None) -> None:
        try:
            self._headers(code, ctype, extra, len(data))
            if body:
                self.wfile.write(data)
        except OSError:  # the client left; nothing to tell anyone
            self.close_connection = True

    def _stream(self, body: bool) -> None:
        preview = self.server.app.preview
        if not preview.admit(MAX_VIEWERS):
            self._send(503, f"503 busy: {MAX_VIEWERS} viewers already watch; try again later\n".encode(), body=body)
            return
        try:
            self._headers(200, "multipart/x-mixed-replace; boundary=frame")
            if not body:
                return
            frames = preview.frames(counted=False)
            try:
                for jpeg in frames:
                    if jpeg is not None:
                        self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n%b\r\n"
                                         % (len(jpeg), jpeg))
            finally:
                frames.close()
        except OSError:  # disconnected mid-stream, or too slow to take a frame within the timeout
            pass
        finally:
            preview.release()
        self.close_connection = True
