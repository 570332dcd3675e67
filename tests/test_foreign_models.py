"""Models from other tools that expect inputs in [-1, 1] are fed correctly by ``edgecls run``.

Each model is made with the plain ``tf.lite.TFLiteConverter`` (float32, and full int8 with
uint8 I/O), with and without standard TFLite metadata carrying NormalizationOptions
(mean 127.5, std 127.5, as Model Maker writes it). The reference feeds each model by hand:
``(pixel - 127.5) / 127.5``, quantized with the model's own input parameters for uint8,
through a bare interpreter. ``edgecls run`` must agree on at least 99 % of the frames, and
must warn, naming --input-mean/--input-std, where the model says nothing.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import run_cli

SIZE = 32
LABELS = ("red", "green", "blue")
FRAMES = 120
MIN_AGREEMENT = 0.99


def _images(folder: Path, n: int = FRAMES) -> list[Path]:
    """Varied smooth colour images (random 4x4 patterns blown up), as PNG."""
    rng = np.random.default_rng(5)
    folder.mkdir(parents=True)
    paths = []
    for i in range(n):
        small = rng.integers(0, 256, (4, 4, 3)).astype(np.uint8)
        image = cv2.resize(small, (96, 96), interpolation=cv2.INTER_LINEAR)
        path = folder / f"img_{i:04d}.png"
        cv2.imwrite(str(path), image)
        paths.append(path)
    return paths


def _keras_model():  # type: ignore[no-untyped-def]
    import tensorflow as tf

    keras = tf.keras
    keras.utils.set_random_seed(3)
    inputs = keras.Input((SIZE, SIZE, 3), batch_size=1)
    x = keras.layers.Conv2D(8, 3, activation="relu")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dense(16, activation="relu")(x)
    return keras.Model(inputs, keras.layers.Dense(len(LABELS), activation="softmax")(x))


def _convert(model, quant: str) -> bytes:  # type: ignore[no-untyped-def]
    import contextlib
    import io

    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if quant == "uint8":
        rng = np.random.default_rng(0)
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: (
            [rng.uniform(-1, 1, (1, SIZE, SIZE, 3)).astype(np.float32)] for _ in range(64))
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.uint8
        converter.inference_output_type = tf.uint8
    with contextlib.redirect_stdout(io.StringIO()):
        return bytes(converter.convert())


def _with_metadata(flat: bytes) -> bytes:
    """Standard TFLite metadata (NormalizationOptions 127.5/127.5) and labels, no edgecls spec."""
    from edgecls.convert.metadata import append_files, build_model_metadata, insert_metadata
    from edgecls.labels import labels_text
    from edgecls.spec import ModelSpec

    spec = ModelSpec(labels=LABELS, head="softmax", input_size=SIZE)
    meta = build_model_metadata(spec, name="foreign", version="1", normalization=(127.5, 127.5))
    return append_files(insert_metadata(flat, meta), {"labels.txt": labels_text(LABELS).encode()})


def _reference(model: Path, images: list[Path]) -> list[int]:
    """Top-1 of each image fed by hand, the way the model was trained: (pixel - 127.5) / 127.5."""
    from ai_edge_litert.interpreter import Interpreter

    from edgecls.preprocess import to_model_input

    interp = Interpreter(model_path=str(model))
    interp.allocate_tensors()
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    scale, zero = inp["quantization"]
    tops = []
    for path in images:
        pixels = to_model_input(cv2.imread(str(path)), "bgr", SIZE).astype(np.float64)
        real = (pixels - 127.5) / 127.5
        if inp["dtype"] == np.float32:
            tensor = real.astype(np.float32)
        else:
            tensor = np.clip(np.round(real / scale + zero), 0, 255).astype(np.uint8)
        interp.set_tensor(inp["index"], tensor[None])
        interp.invoke()
        tops.append(int(np.argmax(interp.get_tensor(out["index"])[0])))
    return tops


@pytest.fixture(scope="module")
def foreign(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Path], list[Path]]:
    root = tmp_path_factory.mktemp("foreign")
    images = _images(root / "frames")
    keras_model = _keras_model()
    models = {}
    for quant in ("float32", "uint8"):
        flat = _convert(keras_model, quant)
        bare = root / f"bare_{quant}" / "model.tflite"
        bare.parent.mkdir()
        bare.write_bytes(flat)
        (bare.parent / "labels.txt").write_text("".join(f"{label}\n" for label in LABELS))
        models[f"bare_{quant}"] = bare
        meta = root / f"meta_{quant}" / "model.tflite"
        meta.parent.mkdir()
        meta.write_bytes(_with_metadata(flat))
        models[f"meta_{quant}"] = meta
    return models, images


def _run(model: Path, frames: Path, out: Path, *flags: str) -> tuple[list[int], str]:
    proc = run_cli("run", "--model", str(model), "--source", str(frames), "--headless", "--quiet",
                   "--jsonl", str(out), "--stats-every", "0", *flags)
    assert proc.returncode == 0, proc.stderr
    records = [r for r in (json.loads(line) for line in out.read_text().splitlines()) if "event" not in r]
    return [r["index"] for r in sorted(records, key=lambda r: r["frame"])], proc.stderr


def _agreement(a: list[int], b: list[int]) -> float:
    assert len(a) == len(b) == FRAMES
    return float(np.mean(np.array(a) == np.array(b)))


@pytest.mark.slow
@pytest.mark.parametrize("quant", ["float32", "uint8"])
def test_metadata_normalisation_is_applied(quant: str, foreign: tuple[dict[str, Path], list[Path]], tmp_path: Path) -> None:
    models, images = foreign
    model = models[f"meta_{quant}"]
    got, stderr = _run(model, images[0].parent, tmp_path / "run.jsonl")
    agreement = _agreement(got, _reference(model, images))
    print(f"{quant} with metadata, no flags: agreement {agreement:.2%} over {FRAMES} frames")
    assert agreement >= MIN_AGREEMENT
    assert "--input-mean" not in stderr


@pytest.mark.slow
@pytest.mark.parametrize("quant", ["float32", "uint8"])
def test_flags_normalise_a_model_without_metadata(quant: str, foreign: tuple[dict[str, Path], list[Path]], tmp_path: Path) -> None:
    models, images = foreign
    model = models[f"bare_{quant}"]
    want = _reference(model, images)
    unflagged, stderr = _run(model, images[0].parent, tmp_path / "raw.jsonl")
    assert "no normalisation in its metadata" in stderr and "--input-mean" in stderr and "--input-std" in stderr, stderr
    flagged, stderr = _run(model, images[0].parent, tmp_path / "flags.jsonl", "--input-mean", "127.5", "--input-std", "127.5")
    assert "--input-mean" not in stderr
    before, after = _agreement(unflagged, want), _agreement(flagged, want)
    print(f"{quant} without metadata: raw pixels {before:.2%}, --input-mean/--input-std 127.5 {after:.2%}")
    assert after >= MIN_AGREEMENT
    assert before < after  # the model's decisions depend on the range: the check can fail


def test_doctor_shows_the_normalisation(foreign: tuple[dict[str, Path], list[Path]]) -> None:
    models, _ = foreign
    shown = run_cli("doctor", "--model", str(models["meta_uint8"]))
    assert "(pixel - 127.5) / 127.5, from TFLite metadata" in shown.stdout, shown.stdout
    bare = run_cli("doctor", "--model", str(models["bare_float32"]))
    assert "from none found" in bare.stdout and "--input-mean" in bare.stdout, bare.stdout
