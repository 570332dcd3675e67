"""The device runtime on real parts: OpenCV-written videos, image folders, real interpreters.

Trained artifacts come from the conversion fixtures (``int8_model``, ``float32_model``);
the small plain models (softmax, int8 I/O, labels beside, grey input) are converted here.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import ClassVar

import cv2
import numpy as np
import pytest
from conftest import run_cli
from device_helpers import cached_plain_models, camera_like_frames, write_video

from edgecls.device.loop import open_classifier, run
from edgecls.device.options import RunOptions
from edgecls.device.results import Frame, FrameStats, Prediction

PER_KIND = 12


@pytest.fixture(scope="session")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return cached_plain_models(tmp_path_factory)


@pytest.fixture(scope="session")
def shapes_video(tmp_path_factory: pytest.TempPathFactory, trained_run: Path) -> tuple[Path, list[str]]:
    """A camera-like 640x480 MJPG video: PER_KIND frames of each class, in label order."""
    labels = (trained_run / "labels.txt").read_text().split()
    frames = camera_like_frames(labels, PER_KIND, seed=7)
    path = write_video(tmp_path_factory.mktemp("video") / "shapes.avi", frames)
    return path, [label for label in labels for _ in range(PER_KIND)]


def _jsonl(path: Path) -> list[dict]:
    """The frame records (run_start / run_end, which carry an "event" key, left out)."""
    return [r for r in (json.loads(line) for line in path.read_text().splitlines()) if "event" not in r]


def test_video_every_frame_in_order_and_classified(int8_model: Path, shapes_video: tuple[Path, list[str]], tmp_path: Path) -> None:
    video, truth = shapes_video
    out = tmp_path / "r.jsonl"
    proc = run_cli("run", "--model", str(int8_model), "--source", str(video), "--headless", "--jsonl", str(out), check=True)
    rows = _jsonl(out)
    assert [r["frame"] for r in rows] == list(range(len(truth)))
    assert [r["source_index"] for r in rows] == list(range(len(truth)))
    for key in ("frame", "ts", "label", "score", "latency_ms", "capture_ms", "preprocess_ms", "invoke_ms", "postprocess_ms"):
        assert key in rows[0]
    assert proc.stdout.count("\n") == len(truth), "one printed line per frame"
    correct = sum(r["label"] == t for r, t in zip(rows, truth, strict=True))
    assert correct >= 0.8 * len(truth), f"only {correct}/{len(truth)} camera-like frames right"
    assert f"done: {len(truth)} frames" in proc.stderr


def test_folder_every_image_in_order(int8_model: Path, demo_data: Path, tmp_path: Path) -> None:
    folder = tmp_path / "imgs"
    folder.mkdir()
    cls = sorted(p.name for p in (demo_data / "test").iterdir())[1]
    images = sorted((demo_data / "test" / cls).iterdir())[:20]
    for i, image in enumerate(images):
        (folder / f"{i:03d}{image.suffix}").write_bytes(image.read_bytes())
    (folder / "010_broken.png").write_bytes(b"not a png")
    out = tmp_path / "r.jsonl"
    run_cli("run", "--model", str(int8_model), "--source", str(folder), "--headless", "--quiet", "--jsonl", str(out), check=True)
    rows = _jsonl(out)
    assert len(rows) == len(images), "every readable image, the broken one skipped"
    assert sum(r["label"] == cls for r in rows) >= 16


def test_float32_and_int8_agree(int8_model: Path, float32_model: Path, shapes_video: tuple[Path, list[str]], tmp_path: Path) -> None:
    video, _ = shapes_video
    got = {}
    for name, model in (("int8", int8_model), ("f32", float32_model)):
        rows: list[Prediction] = []
        run(RunOptions(model=model, source=str(video), headless=True, quiet=True, stats_every_s=0),
            extra_sinks=[_Collect(rows)])
        got[name] = rows
    agree = sum(a.label == b.label for a, b in zip(got["int8"], got["f32"], strict=True))
    assert agree >= 0.95 * len(got["f32"])
    diff = max(abs(a.score - b.score) for a, b in zip(got["int8"], got["f32"], strict=True) if a.label == b.label)
    assert diff < 0.15


class _Collect:
    """A sink that keeps predictions: the plug-in point later features use."""

    def __init__(self, into: list[Prediction], stats: list[FrameStats] | None = None) -> None:
        self.into = into
        self.stats = stats

    def on_result(self, frame: Frame, tensor: np.ndarray, prediction: Prediction, stats: FrameStats) -> None:
        assert tensor.shape == (64, 64, 3) and tensor.dtype == np.uint8
        self.into.append(prediction)
        if self.stats is not None:
            self.stats.append(stats)

    def close(self) -> None:
        pass


@pytest.mark.parametrize("name", ["sigmoid_u8", "softmax3_f32", "softmax3_i8"])
def test_plain_models_match_a_hand_computed_reference(name: str, models: dict[str, Path]) -> None:
    """Labels from labels.txt beside the model (plain and 'id label'); uint8 fed as is when
    the input quantization is the identity, quantized otherwise; outputs dequantized."""
    from ai_edge_litert.interpreter import Interpreter

    info, backend, classifier = open_classifier(RunOptions(model=models[name], top_k=3))
    expected_labels = ("cat", "dog") if name.startswith("sigmoid") else ("red", "green", "blue")
    assert info.labels == expected_labels
    assert info.head == ("sigmoid" if name.startswith("sigmoid") else "softmax")
    ref = Interpreter(str(models[name]))
    ref.allocate_tensors()
    inp, out = ref.get_input_details()[0], ref.get_output_details()[0]
    if name == "softmax3_i8":
        assert inp["dtype"] == np.int8 and inp["quantization"] != (1.0, 0)
    rng = np.random.default_rng(3)
    for _ in range(5):
        frame = cv2.GaussianBlur(rng.integers(0, 256, (480, 640, 3), dtype=np.uint8), (9, 9), 0)
        tensor, prediction, _ = classifier.classify(Frame(frame, "bgr", 0, 0.0, 0.0))
        x = tensor[None].astype(np.float32)
        scale, zp = inp["quantization"]
        if inp["dtype"] != np.float32 and scale not in (0.0, 1.0):
            x = np.clip(np.round(x / scale) + zp, np.iinfo(inp["dtype"]).min, np.iinfo(inp["dtype"]).max)
        elif inp["dtype"] != np.float32:
            x = x + zp
        ref.set_tensor(inp["index"], x.astype(inp["dtype"]))
        ref.invoke()
        y = ref.get_tensor(out["index"]).astype(np.float64)
        oscale, ozp = out["quantization"]
        if out["dtype"] != np.float32:
            y = (y - ozp) * oscale
        probs = np.array([1 - y[0, 0], y[0, 0]]) if y.shape[1] == 1 else y[0]
        np.testing.assert_allclose(prediction.probabilities, probs, atol=1e-6)
        assert prediction.label == expected_labels[int(np.argmax(probs))]
        assert len(prediction.top) == len(expected_labels)
    backend.close()


def test_threshold_top_k_and_smoothing(models: dict[str, Path]) -> None:
    _, _, plain = open_classifier(RunOptions(model=models["softmax3_f32"]))
    _, _, strict = open_classifier(RunOptions(model=models["softmax3_f32"], threshold=0.999, top_k=2))
    _, _, smooth = open_classifier(RunOptions(model=models["softmax3_f32"], smooth=4))
    rng = np.random.default_rng(5)
    seen = []
    for i in range(6):
        frame = Frame(rng.integers(0, 256, (120, 160, 3), dtype=np.uint8), "bgr", i, 0.0, 0.0)
        _, p, _ = plain.classify(frame)
        _, s, _ = strict.classify(frame)
        _, m, _ = smooth.classify(frame)
        seen.append(np.array(p.probabilities))
        assert s.label == "unknown" and s.index == -1 and len(s.top) == 2
        assert s.top[0][1] >= s.top[1][1]
        np.testing.assert_allclose(m.probabilities, np.mean(seen[-4:], axis=0), atol=1e-9)


def test_device_runtime_never_imports_tensorflow(models: dict[str, Path], tmp_path: Path) -> None:
    video = write_video(tmp_path / "v.avi", camera_like_frames(["circle"], 3))
    code = f"""
import sys
import edgecls.cli
edgecls.cli._register_subcommands()
from edgecls import litert
from edgecls.device import backends, bench, classify, doctor, loop, reader, sinks, sources
from edgecls.device.options import RunOptions
summary = loop.run(RunOptions(model=__import__('pathlib').Path({str(models['sigmoid_u8'])!r}), source={str(video)!r},
                              headless=True, quiet=True))
doctor.diagnose()
assert summary.frames == 3, summary
bad = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras', 'tf_keras'))
print('TF-MODULES', bad)
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "TF-MODULES []" in proc.stdout


def test_bench_counts_xnnpack_partitions(int8_model: Path, tmp_path: Path) -> None:
    out = tmp_path / "b.json"
    run_cli("bench", "--model", str(int8_model), "--frames", "50", "--warmup", "5", "--json", str(out), check=True)
    report = json.loads(out.read_text())
    assert [s["name"] for s in report["stages"]] == ["capture", "preprocess", "invoke", "postprocess", "total"]
    assert report["delegated_partitions"] >= 1, "ai-edge-litert's XNNPACK takes the static-batch int8 graph"
    assert report["frames"] == 50 and report["fps"] > 0


def test_doctor_reports_what_is_missing(int8_model: Path) -> None:
    proc = run_cli("doctor", "--model", str(int8_model), check=True)
    assert "interpreter: ai-edge-litert" in proc.stdout
    assert "resize: C kernel" in proc.stdout
    assert "libedgetpu1-std" in proc.stdout
    assert "picamera2" in proc.stdout and "--system-site-packages" in proc.stdout
    assert "1 delegated partition" in proc.stdout


class _FakePicamera2:
    """Stands in for picamera2's Picamera2 at the module boundary (no CSI camera here):
    records the configuration asked for and hands out R,G,B-ordered frames."""

    asked: ClassVar[dict] = {}

    def __init__(self) -> None:
        self.frame = np.zeros((480, 640, 3), np.uint8)
        self.frame[:, :, 0] = 255  # pure red in R,G,B memory order

    def create_video_configuration(self, main: dict, buffer_count: int) -> dict:
        _FakePicamera2.asked = {"main": main, "buffer_count": buffer_count}
        return {"main": main}

    def configure(self, config: dict) -> None:
        pass

    def start(self) -> None:
        pass

    def capture_array(self, stream: str) -> np.ndarray:
        time.sleep(1 / 30)
        return self.frame

    def stop(self) -> None:
        pass

    def close(self) -> None:
        pass


def test_picamera2_source_up_to_the_module_boundary(monkeypatch: pytest.MonkeyPatch, models: dict[str, Path]) -> None:
    """picamera2 frames are declared RGB ("BGR888" in libcamera's naming) and reach the model
    as RGB without any further conversion; the source runs through the latest-frame reader."""
    import types

    fake = types.ModuleType("picamera2")
    fake.Picamera2 = _FakePicamera2  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "picamera2", fake)
    tensors: list[np.ndarray] = []

    class Keep(_Collect):
        def on_result(self, frame: Frame, tensor: np.ndarray, prediction: Prediction, stats: FrameStats) -> None:
            assert frame.colour == "rgb"
            tensors.append(tensor)

    summary = run(RunOptions(model=models["sigmoid_u8"], source="picamera2", headless=True, quiet=True, max_frames=5),
                  extra_sinks=[Keep([])])
    assert summary.frames == 5
    assert _FakePicamera2.asked["main"]["format"] == "BGR888"
    assert tensors[0][..., 0].min() == 255 and tensors[0][..., 2].max() == 0, "red stays in channel 0 (RGB)"


def test_capture_size_reaches_picamera2_and_bench(monkeypatch: pytest.MonkeyPatch, models: dict[str, Path], tmp_path: Path) -> None:
    """--capture-size is what picamera2 is asked for (the ISP scales for free), and what
    `edgecls bench` measures without a source."""
    import types

    class Sized(_FakePicamera2):
        def create_video_configuration(self, main: dict, buffer_count: int) -> dict:
            self.frame = np.zeros((main["size"][1], main["size"][0], 3), np.uint8)
            return super().create_video_configuration(main, buffer_count)

    fake = types.ModuleType("picamera2")
    fake.Picamera2 = Sized  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "picamera2", fake)
    shapes: list[tuple[int, ...]] = []

    class Keep(_Collect):
        def on_result(self, frame: Frame, tensor: np.ndarray, prediction: Prediction, stats: FrameStats) -> None:
            shapes.append(frame.image.shape)

    run(RunOptions(model=models["sigmoid_u8"], source="picamera2", headless=True, quiet=True, max_frames=3,
                   capture_size=(320, 240)), extra_sinks=[Keep([])])
    assert Sized.asked["main"]["size"] == (320, 240)
    assert shapes == [(240, 320, 3)] * 3

    out = tmp_path / "bench.json"
    run_cli("bench", "--model", str(models["sigmoid_u8"]), "--frames", "20", "--warmup", "2",
            "--capture-size", "320x240", "--json", str(out), check=True)
    assert json.loads(out.read_text())["source"] == "synthetic 320x240 frame in memory"


DECODE_THREADS_PROBE = """
import os, sys
from edgecls.device.sources import SourceOptions, open_source, parse_source

def tasks():
    return len(os.listdir("/proc/self/task"))

before = tasks()
counts, frames = {}, {}
for n in (1, 3, 0):
    source = open_source(parse_source(sys.argv[1]), SourceOptions(decode_threads=n))
    counts[n] = tasks() - before
    frames[n] = [source.read() for _ in range(6)]
    source.close()
print(counts[1], counts[3], counts[0], all((a == b).all() for a, b in zip(frames[1], frames[3])))
"""


def test_decode_threads_reach_ffmpeg(tmp_path: Path) -> None:
    """--decode-threads is the FFmpeg decoder's thread count: 1 decodes on the reader's own
    thread (no thread more in the process), 3 starts FFmpeg's frame threads, 0 is FFmpeg's
    own choice; the frames are the same either way. Counted in a fresh process."""
    video = write_video(tmp_path / "v.avi", camera_like_frames(["circle", "cross"], 4))
    out = subprocess.run([sys.executable, "-c", DECODE_THREADS_PROBE, str(video)], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out[0] == "0" and int(out[1]) >= 1 and out[3] == "True", out


def test_without_a_display_the_window_falls_back_to_headless(models: dict[str, Path], tmp_path: Path) -> None:
    video = write_video(tmp_path / "v.avi", camera_like_frames(["circle"], 4))
    proc = run_cli("run", "--model", str(models["sigmoid_u8"]), "--source", str(video),
                   env={"DISPLAY": "", "WAYLAND_DISPLAY": ""}, check=True)
    assert "no display" in proc.stderr and proc.stdout.count("\n") == 4


def _legacy_python() -> str | None:
    import os

    env = os.environ.get("EDGECLS_LEGACY_PYTHON")
    default = Path(__file__).resolve().parents[1] / ".venv-legacy" / "bin" / "python"
    return env or (str(default) if default.exists() else None)


@pytest.mark.legacy
def test_tflite_runtime_fallback_gives_the_same_outputs(int8_model: Path, demo_data: Path, tmp_path: Path) -> None:
    """The one import site falls back to tflite-runtime 2.14 where ai-edge-litert is absent
    (the legacy venv: tflite-runtime, numpy<2, nothing else) and runs the artifact the same."""
    import os

    python = _legacy_python()
    if python is None:
        pytest.skip("no tflite-runtime 2.14 venv (.venv-legacy; scripts/test makes it)")
    repo = Path(__file__).resolve().parents[1]
    tree = tmp_path / "tree" / "edgecls"
    tree.mkdir(parents=True)
    for f in (repo / "edgecls").glob("*.py"):
        (tree / f.name).symlink_to(f)
    (tree / "device").symlink_to(repo / "device")
    from edgecls.images import load_model_input

    images = sorted((demo_data / "test").rglob("*.png"))[:8]
    tensors = np.stack([load_model_input(p) for p in images])
    np.save(tmp_path / "x.npy", tensors)
    # Like for like: tflite-runtime 2.14 runs int8 graphs on TFLite's builtin kernels (its
    # XNNPACK takes none), and ai-edge-litert's default XNNPACK int8 kernels round a few
    # outputs differently (tests/test_convert_runtimes.py), so compare with ai-edge-litert's
    # builtin kernels, which must give the same bits.
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    ref = Interpreter(model_path=str(int8_model),
                      experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    ref.allocate_tensors()
    want = []
    for t in tensors:
        ref.set_tensor(ref.get_input_details()[0]["index"], t[None])
        ref.invoke()
        want.append(ref.get_tensor(ref.get_output_details()[0]["index"]).tolist())
    code = f"""
import json, sys
from pathlib import Path
sys.path.insert(0, {str(tmp_path / 'tree')!r})
import numpy as np
from edgecls.litert import runtime
from edgecls.device.backends import BackendOptions, open_backend
assert runtime().name == "tflite-runtime", runtime()
b = open_backend("cpu", Path({str(int8_model)!r}), BackendOptions())
print(json.dumps([b.invoke(t[None]).tolist() for t in np.load({str(tmp_path / 'x.npy')!r})]))
"""
    proc = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=120,
                          env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == want


def test_realtime_paces_a_file_at_its_frame_rate(int8_model: Path, shapes_video: tuple[Path, list[str]], tmp_path: Path) -> None:
    """--realtime delivers a recording as a camera would: at its recorded rate, every frame kept."""
    video, truth = shapes_video
    fps = cv2.VideoCapture(str(video)).get(cv2.CAP_PROP_FPS)
    assert fps > 0
    out = tmp_path / "r.jsonl"
    run(RunOptions(model=int8_model, source=str(video), headless=True, quiet=True, stats_every_s=0,
                   jsonl=out, realtime=True))
    rows = _jsonl(out)
    assert [r["source_index"] for r in rows] == list(range(len(truth)))
    span = rows[-1]["ts"] - rows[0]["ts"]
    # a lower bound only: pacing can be late on a busy machine, never early
    assert span >= 0.95 * (len(rows) - 1) / fps, f"{len(rows)} frames in {span:.2f} s at {fps} fps"


def test_read_ahead_gives_every_frame_in_order_with_bounded_memory(shapes_video: tuple[Path, list[str]]) -> None:
    """Files are decoded on a thread of their own while frames are classified: the same
    frames as a plain read, in order, never more than ``depth`` waiting, released on close."""
    from edgecls.device.reader import DirectReader, ReadAheadReader
    from edgecls.device.sources import open_source, parse_source

    video, truth = shapes_video
    direct = DirectReader(open_source(parse_source(str(video))))
    want = []
    while (frame := direct.next(1.0)) is not None:
        want.append(frame.image)
    direct.close()
    assert len(want) == len(truth)

    source = open_source(parse_source(str(video)))
    reads = 0
    read = source.read

    def counted() -> np.ndarray | None:
        nonlocal reads
        reads += 1
        return read()

    source.read = counted  # type: ignore[method-assign]
    reader = ReadAheadReader(source, depth=2)
    first = reader.next(5.0)
    assert first is not None and first.index == 0
    time.sleep(0.3)  # a slow consumer: the decoder must wait, not run ahead
    assert reads <= 1 + 2 + 1, f"{reads} frames decoded while one was taken (depth 2)"
    got = [first.image]
    while (frame := reader.next(5.0)) is not None:
        assert frame.index == len(got)
        got.append(frame.image)
    assert reader.finished
    assert len(got) == len(want) and all(np.array_equal(a, b) for a, b in zip(got, want, strict=True))
    reader.close()
    assert not reader._thread.is_alive()
    assert not source.cap.isOpened(), "the capture is released once the decoder stops"  # type: ignore[attr-defined]


def test_read_ahead_stops_early_and_passes_errors_to_the_loop(shapes_video: tuple[Path, list[str]]) -> None:
    from edgecls.device.reader import ReadAheadReader
    from edgecls.device.sources import open_source, parse_source

    video, _ = shapes_video
    source = open_source(parse_source(str(video)))
    reader = ReadAheadReader(source)
    assert reader.next(5.0) is not None
    reader.close()  # mid-file, with the decoder blocked on a full queue
    assert not reader._thread.is_alive()
    assert not source.cap.isOpened()  # type: ignore[attr-defined]

    source = open_source(parse_source(str(video)))
    read, calls = source.read, [0]

    def failing() -> np.ndarray | None:
        calls[0] += 1
        if calls[0] > 3:
            raise OSError("disk went away")
        return read()

    source.read = failing  # type: ignore[method-assign]
    reader = ReadAheadReader(source)
    frames = [reader.next(5.0) for _ in range(3)]
    assert all(f is not None for f in frames)
    with pytest.raises(OSError, match="disk went away"):
        reader.next(5.0)
    assert reader.finished and reader.next(0.1) is None
    reader.close()
