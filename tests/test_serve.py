"""``edgecls run --serve``: the routes, the token, the shared capped encoder, and every bad
input (port in use, host not of this machine, wrong token, a client that vanishes
mid-stream or stalls, malformed requests) with the classifier still running."""

from __future__ import annotations

import logging
import os
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from conftest import run_cli
from device_helpers import MjpegServer, camera_like_frames, free_port, needs_ffmpeg, write_video
from serve_helpers import StreamViewer, get, raw, status, stop_gracefully, wait_for

from edgecls.device.model import ModelInfo
from edgecls.device.results import Frame, FrameStats, LoopStats, Prediction, StageTimings
from edgecls.device.serve import PreviewSink, ServeError, parse_address
from edgecls.device.serve.preview import PREVIEW_FPS
from edgecls.errors import MissingDependencyError

TOKEN = "s3cret-token"


def fake_result(i: int, label: str = "circle") -> tuple[Frame, np.ndarray, Prediction, FrameStats]:
    image = np.full((480, 640, 3), (i * 7) % 255, np.uint8)
    frame = Frame(image, "bgr", i, time.time(), time.monotonic())
    pred = Prediction(label, 0 if label == "circle" else 1, 0.9, (0.9, 0.1), ((label, 0.9),))
    stats = FrameStats(i, i, frame.ts, 1.0, StageTimings(0.1, 0.2, 0.3, 0.05), LoopStats(30.0, i + 1, 0, 0, 0))
    return frame, np.zeros((64, 64, 3), np.uint8), pred, stats


@pytest.fixture()
def sink() -> Iterator[PreviewSink]:
    info = ModelInfo(Path("model_int8.tflite"), ("circle", "cross"), "sigmoid", None, "test")
    s = PreviewSink(parse_address("127.0.0.1:0"), info, "cpu, test", "test.avi")
    yield s
    s.close()


@pytest.fixture()
def token_sink() -> Iterator[PreviewSink]:
    info = ModelInfo(Path("model_int8.tflite"), ("circle", "cross"), "sigmoid", None, "test")
    s = PreviewSink(parse_address("127.0.0.1:0"), info, "cpu, test", "test.avi", token=TOKEN)
    s.on_result(*fake_result(0))
    yield s
    s.close()


@pytest.mark.parametrize(("text", "host", "port"), [
    ("8080", "127.0.0.1", 8080), ("0.0.0.0:9000", "0.0.0.0", 9000), ("[::1]:80", "::1", 80), ("pi.local:8080", "pi.local", 8080),
])
def test_parse_address(text: str, host: str, port: int) -> None:
    got = parse_address(text)
    assert (got.host, got.port) == (host, port)


@pytest.mark.parametrize("text", ["abc", "70000", "::1", "host:", ":8080", "1.2.3.4:-1", ""])
def test_parse_address_refuses(text: str) -> None:
    with pytest.raises(ServeError, match=r"--serve takes \[HOST:\]PORT"):
        parse_address(text)


def test_routes(sink: PreviewSink) -> None:
    port = sink.address.port
    assert status(port)["prediction"] is None, "before the first frame"
    for i in range(3):
        sink.on_result(*fake_result(i, "circle" if i < 2 else "cross"))
    code, headers, body = get(port, "/")
    assert code == 200 and b"edgecls live" in body and headers["content-type"].startswith("text/html")
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    s = status(port)
    assert s["prediction"]["label"] == "cross" and s["stats"]["frames"] == 3 and s["backend"] == "cpu, test"
    assert [h["label"] for h in s["history"]] == ["circle", "cross"]
    code, headers, body = get(port, "/metrics")
    assert code == 200 and headers["content-type"].startswith("text/plain")
    text = body.decode()
    for needle in ("edgecls_frames_total 3.0", 'edgecls_stage_seconds_count{stage="invoke"} 3.0', "edgecls_dropped_frames_total",
                   "edgecls_reconnects_total", 'model="model_int8.tflite"'):
        assert needle in text, needle
    viewer = StreamViewer(port, seconds=5)
    viewer.start()
    wait_for(lambda: viewer.frames >= 1, 5, "a frame on /stream")
    viewer.stop()
    assert viewer.last_jpeg[:2] == b"\xff\xd8" and viewer.last_jpeg[-2:] == b"\xff\xd9"
    assert get(port, "/", method="HEAD")[:2][0] == 200
    for path in ("/nope", "/../../etc/passwd", "/status/../etc/passwd", "//etc/passwd"):
        assert get(port, path)[0] == 404, path
    for method in ("POST", "PUT", "DELETE", "PATCH", "OPTIONS"):
        code, headers, _ = get(port, "/status", method=method)
        assert code == 405 and headers["allow"] == "GET, HEAD", method


def test_token_on_every_route(token_sink: PreviewSink) -> None:
    port = token_sink.address.port
    for path in ("/", "/stream", "/status", "/metrics", "/nope"):
        for query, headers in (("", {}), ("?token=wrong", {}), ("", {"Authorization": "Bearer wrong"}),
                               (f"?token={TOKEN}", {"Authorization": "Bearer wrong"})):
            code, got, body = get(port, path + query, headers)
            assert code == 401, (path, query, headers)
            assert got["www-authenticate"].startswith("Bearer") and body.startswith(b"401 unauthorized")
            assert b"circle" not in body and b"edgecls live" not in body
    assert status(port, f"?token={TOKEN}")["prediction"]["label"] == "circle"
    assert get(port, "/metrics", {"Authorization": f"Bearer {TOKEN}"})[0] == 200
    assert get(port, f"/?token={TOKEN}")[0] == 200


def test_dns_rebinding_host_is_refused(sink: PreviewSink) -> None:
    port = sink.address.port
    assert get(port, "/status", {"Host": "evil.example:80"})[0] == 403
    assert get(port, "/status", {"Host": f"localhost:{port}"})[0] == 200


def test_one_encode_per_frame_capped_and_shared(sink: PreviewSink) -> None:
    """Three viewers, one frame: one encode. 300 frames/s offered for 2 s: at most
    PREVIEW_FPS encodes a second, each viewer gets at most those, and a viewer that never
    reads holds back no one (the loop-side call stays in microseconds)."""
    port = sink.address.port
    viewers = [StreamViewer(port, seconds=10) for _ in range(3)]
    for v in viewers:
        v.start()
    wait_for(lambda: sink.preview.viewers == 3, 5, "3 viewers")
    sink.on_result(*fake_result(0))
    wait_for(lambda: all(v.frames == 1 for v in viewers), 5, "the frame at every viewer")
    time.sleep(0.3)
    assert sink.preview.encoded == 1, "encoded once, shared by all viewers"
    stalled = socket.create_connection(("127.0.0.1", port))
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stalled.sendall(b"GET /stream HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")  # and never reads
    wait_for(lambda: sink.preview.viewers == 4, 5, "the stalled viewer")
    start, costs = time.monotonic(), []
    i = 1
    while time.monotonic() - start < 2.0:
        t = time.perf_counter()
        sink.on_result(*fake_result(i))
        costs.append(time.perf_counter() - t)
        i += 1
        time.sleep(1 / 300)
    elapsed = time.monotonic() - start
    time.sleep(0.3)
    for v in viewers:
        v.stop()
    stalled.close()
    cap = PREVIEW_FPS * elapsed + 2
    assert sink.preview.encoded <= cap, (sink.preview.encoded, cap)
    assert sink.preview.encoded >= 5, "the preview keeps up a useful rate"
    for v in viewers:
        assert v.error is None and 5 <= v.frames <= sink.preview.encoded, (v.frames, v.error)
    # Never blocked by the stalled viewer: a write to it on the loop thread would hang once its
    # 4 KiB buffer fills (after a frame or two), for good. How many microseconds the call costs
    # is a speed figure: scripts/bench_serve.py measures the loop with and without viewers.
    assert max(costs) < 1.0, f"on_result took {max(costs):.2f} s on the loop thread: held back by a viewer"
    assert len(costs) >= 50, f"only {len(costs)} frames offered in 2 s: the loop was held back"


def test_malformed_requests_and_disconnects_leave_the_server_up(sink: PreviewSink) -> None:
    port = sink.address.port
    sink.on_result(*fake_result(0))
    for junk in (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(64),  # a TLS hello
                 b"GARBAGE\r\n\r\n", b"GET\r\n\r\n", b"GET /status HTTP/9.9\r\n\r\n",
                 b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\n\r\n", b"GET / HTTP/1.1\r\n" + b"X: y\r\n" * 200 + b"\r\n",
                 b"\r\n"):
        reply = raw(port, junk)  # the stdlib's error page (4xx/505), or nothing
        assert reply == b"" or b"Error code: 4" in reply or b"Error code: 505" in reply, reply[:80]
        assert b"circle" not in reply and b"edgecls live" not in reply
    # A viewer that vanishes mid-stream: RST while a frame is being written.
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"GET /stream HTTP/1.0\r\n\r\n")
    s.recv(100)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()
    for i in range(1, 5):
        sink.on_result(*fake_result(i))
        time.sleep(0.1)
    wait_for(lambda: sink.preview.viewers == 0, 5, "the vanished viewer to be let go")
    assert status(port)["stats"]["frames"] == 5


def test_other_interface_warns(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """Tests bind loopback only: pretend the bound address is another interface."""
    import edgecls.device.serve as serve
    from edgecls.device.options import RunOptions
    from edgecls.device.serve import server

    real = server.bind

    def bind(address: server.Address, app: server.PreviewApp) -> server.PreviewHTTPServer:
        srv = real(address, app)
        srv.loopback = False
        return srv

    monkeypatch.setattr(serve, "bind", bind)
    info = ModelInfo(Path("m.tflite"), ("a", "b"), "sigmoid", None, "test")
    monkeypatch.setattr(logging.getLogger("edgecls.device"), "propagate", True)
    for token, needle in ((None, "anyone who can reach this port"), ("tok", "every route needs the token")):
        with caplog.at_level(logging.WARNING, logger="edgecls.device"):
            sink = serve.open_preview(RunOptions(model=Path("m.tflite"), serve="127.0.0.1:0", serve_token=token), info, "0")
        assert sink is not None
        sink.close()
        assert needle in caplog.text and "reachable from other machines" in caplog.text
        caplog.clear()


@pytest.mark.parametrize(("source", "shown"), [
    ("rtsp://admin:hunter2@cam.local:554/s1", "rtsp://***@cam.local:554/s1"),
    ("http://cam.local/x@y.mjpg", "http://cam.local/x@y.mjpg"), ("0", "0"), ("/videos/a@b.avi", "/videos/a@b.avi"),
])
def test_camera_credentials_are_not_served(source: str, shown: str) -> None:
    from edgecls.device.serve import public_source

    assert public_source(source) == shown


def test_ipv6_loopback() -> None:
    info = ModelInfo(Path("m.tflite"), ("a", "b"), "sigmoid", None, "test")
    try:
        sink = PreviewSink(parse_address("[::1]:0"), info, "cpu", "0")
    except ServeError as err:
        pytest.skip(f"no IPv6 loopback here: {err}")
    try:
        assert sink.server is not None and sink.server.loopback and sink.url.startswith("http://[::1]:")
        with socket.create_connection(("::1", sink.address.port), timeout=5) as s:
            s.sendall(b"GET /status HTTP/1.0\r\nHost: [::1]\r\n\r\n")
            assert s.recv(100).startswith(b"HTTP/1.0 200")
    finally:
        sink.close()


def test_missing_prometheus_client_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "prometheus_client", None)
    info = ModelInfo(Path("m.tflite"), ("a", "b"), "sigmoid", None, "test")
    with pytest.raises(MissingDependencyError, match=r'pip install "edgecls\[serve\]"'):
        PreviewSink(parse_address("127.0.0.1:0"), info, "cpu", "0")


# ---------------------------------------------------------------- edgecls run, end to end

@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_video(tmp_path_factory.mktemp("serve_video") / "v.avi", camera_like_frames(["circle", "cross"], 15, seed=4))


def one_line(args: list[str], needle: str, tmp_path: Path) -> None:
    out = tmp_path / "never.jsonl"
    proc = run_cli("run", "--headless", "--jsonl", str(out), *args, timeout=60)
    assert proc.returncode != 0, proc.stdout
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and needle in lines[0], proc.stderr
    assert proc.stdout == "" and not out.exists(), "refused before capture starts"
    print(lines[0])


def test_run_port_in_use(int8_model: Path, video: Path, tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        one_line(["--model", str(int8_model), "--source", str(video), "--serve", str(port)], f"port {port} is in use", tmp_path)


@pytest.mark.parametrize(("host", "needle"), [
    ("203.0.113.7", "is not an address of this machine"),  # TEST-NET-3: never local
    ("no-such-host.invalid", "is unknown"),
    ("300.1.2.3", "is unknown"),
])
def test_run_host_cannot_be_bound(host: str, needle: str, int8_model: Path, video: Path, tmp_path: Path) -> None:
    one_line(["--model", str(int8_model), "--source", str(video), "--serve", f"{host}:{free_port()}"], needle, tmp_path)


def test_run_bad_serve_value(int8_model: Path, video: Path, tmp_path: Path) -> None:
    one_line(["--model", str(int8_model), "--source", str(video), "--serve", "localhost:http"], "--serve takes [HOST:]PORT", tmp_path)


def test_run_video_file_with_serve(int8_model: Path, video: Path, tmp_path: Path) -> None:
    """A file runs to its end with the server up and every frame classified."""
    out = tmp_path / "r.jsonl"
    proc = run_cli("run", "--model", str(int8_model), "--source", str(video), "--headless", "--quiet",
                   "--jsonl", str(out), "--serve", f"127.0.0.1:{free_port()}", check=True, timeout=60)
    assert len(out.read_text().splitlines()) == 30 + 2 and "done: 30 frames" in proc.stderr  # + run_start, run_end
    assert "preview on http://127.0.0.1:" in proc.stderr


@needs_ffmpeg
def test_run_keeps_classifying_through_bad_clients(int8_model: Path, video: Path, tmp_path: Path) -> None:
    """A live stream, --serve with a token from the environment, then: no token, a wrong
    token, a viewer that resets mid-stream, one that stalls, malformed requests. The run
    keeps going, and stops cleanly on SIGTERM."""
    port = free_port()
    env = {**os.environ, "COLUMNS": "200", "EDGECLS_SERVE_TOKEN": TOKEN}
    with MjpegServer(video) as cam:
        proc = subprocess.Popen([sys.executable, "-m", "edgecls", "run", "--model", str(int8_model), "--source", cam.url,
                                 "--headless", "--quiet", "--serve", str(port), "--stats-every", "0"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
        try:
            q = f"?token={TOKEN}"
            wait_for(lambda: status(port, q)["stats"], 30, "the first frames")
            assert get(port, "/status")[0] == 401 and get(port, "/status?token=nope")[0] == 401
            assert get(port, "/stream", {"Authorization": "Bearer nope"})[0] == 401
            s = socket.create_connection(("127.0.0.1", port))
            s.sendall(f"GET /stream{q} HTTP/1.0\r\n\r\n".encode())
            assert s.recv(100).startswith(b"HTTP/1.0 200")
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            s.close()  # gone mid-stream
            stalled = socket.create_connection(("127.0.0.1", port))
            stalled.sendall(f"GET /stream{q} HTTP/1.0\r\n\r\n".encode())  # never read
            for junk in (b"GARBAGE\r\n\r\n", b"\x16\x03\x01\x00", b"GET /" + b"x" * 70000 + b" HTTP/1.1\r\n\r\n"):
                raw(port, junk)
            before = status(port, q)["stats"]["frames"]
            viewer = StreamViewer(port, q, seconds=10)
            viewer.start()
            wait_for(lambda: status(port, q)["stats"]["frames"] >= before + 30, 15, "30 more frames")
            wait_for(lambda: viewer.frames >= 5, 10, "a healthy viewer to get frames")
            viewer.stop()
            stalled.close()
            assert proc.poll() is None, "still running"
        finally:
            err = stop_gracefully(proc)
    assert proc.returncode == 0, err
    assert "Traceback" not in err and "stopped by signal" in err, err
    assert TOKEN not in err, "the token is never logged"
    print(err)


def test_serve_imports_no_tensorflow() -> None:
    code = ("import sys, edgecls.device.serve, edgecls.device.cli, edgecls.device.sinks; "
            "print(sorted(m for m in sys.modules if m.startswith(('tensorflow', 'keras'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]"


def test_systemd_unit_enables_serve_from_its_environment_file() -> None:
    from conftest import REPO

    deploy = REPO / "device" / "deploy"
    unit = (deploy / "edgecls.service").read_text()
    assert "EnvironmentFile=-/etc/edgecls/edgecls.env" in unit
    exec_start = unit.split("ExecStart=", 1)[1].split("\n#", 1)[0]
    # unquoted: each splits into its option and value, and is nothing when unset
    assert exec_start.rstrip().endswith("$EDGECLS_SERVE $EDGECLS_MQTT"), exec_start
    env = (deploy / "edgecls.env").read_text()
    assert "#EDGECLS_SERVE=--serve 0.0.0.0:8080" in env and "#EDGECLS_SERVE_TOKEN=" in env
    help_text = run_cli("run", "--help").stdout
    assert "--serve" in help_text and "EDGECLS_SERVE_TOKEN" in help_text
