"""Standard clients load every edgecls artifact, find its labels and agree with ``edgecls run``.

MediaPipe Tasks' ImageClassifier and tflite-support's ImageClassifier each run in a
throw-away venv of their own (scripts/test makes them: they pin protobuf and numpy against
TensorFlow's) and are found through EDGECLS_MEDIAPIPE_PYTHON / EDGECLS_TFLITE_SUPPORT_PYTHON;
without one, its tests skip and say why. Both refuse a label map whose size differs from the
output's, which is why a sigmoid head is exported as [1 - p, p].

The models are edgecls's own CNN, converted by ``convert_run`` from a run folder whose weights
are fitted for a few seconds only (conversion, metadata and heads are what is tested),
and every image is already at the model's size, so no client resizes.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import run_cli

CLIENTS = {"mediapipe": "EDGECLS_MEDIAPIPE_PYTHON", "tflite-support": "EDGECLS_TFLITE_SUPPORT_PYTHON"}
IMAGES = 40

#: Classify each PNG (argv[2:]) with the client's own classifier; print the top category names.
CLIENT_CODE = {
    "mediapipe": """
import json, sys
import mediapipe as mp
from mediapipe.tasks import python as mpt
from mediapipe.tasks.python import vision
options = vision.ImageClassifierOptions(base_options=mpt.BaseOptions(model_asset_path=sys.argv[1]), max_results=1)
with vision.ImageClassifier.create_from_options(options) as classifier:
    tops = [classifier.classify(mp.Image.create_from_file(p)).classifications[0].categories[0].category_name
            for p in sys.argv[2:]]
print(json.dumps(tops))
""",
    "tflite-support": """
import json, sys
from tflite_support.task import core, processor, vision
options = vision.ImageClassifierOptions(base_options=core.BaseOptions(file_name=sys.argv[1]),
                                        classification_options=processor.ClassificationOptions(max_results=1))
classifier = vision.ImageClassifier.create_from_options(options)
tops = [classifier.classify(vision.TensorImage.create_from_file(p)).classifications[0].categories[0].category_name
        for p in sys.argv[2:]]
print(json.dumps(tops))
""",
}


def _client(name: str) -> str:
    python = os.environ.get(CLIENTS[name])
    if not python or not Path(python).exists():
        pytest.skip(f"{name} is not installed: scripts/test makes its venv and sets {CLIENTS[name]} "
                    "(no wheels for this Python, or no network)")
    return python


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Path], Path]:
    """int8 artifacts of a binary (sigmoid) and a 3-class (softmax) run, the binary one in float32
    too, and a folder of images."""
    from edgecls.convert.export import convert_run
    from edgecls.demo_data import DemoDataOptions, generate
    from edgecls.model import MODEL_FILE, SPEC_FILE, build_model, import_keras
    from edgecls.preprocess import to_model_input
    from edgecls.spec import ModelSpec, save_spec

    root = tmp_path_factory.mktemp("interop")
    keras = import_keras()
    data = root / "data"
    generate(data, DemoDataOptions(classes=3, train_per_class=IMAGES // 3 + 1, test_per_class=4, seed=7))
    frames = root / "frames"
    frames.mkdir()
    sources = sorted(p for p in (data / "train").rglob("*") if p.is_file())
    for i, path in enumerate(sources[:IMAGES]):  # at the model's size: no client resizes
        rgb = to_model_input(cv2.imread(str(path)), "bgr", 64)
        cv2.imwrite(str(frames / f"img_{i:03d}.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    made = {}
    for name, classes in (("binary", 2), ("multiclass", 3)):
        keras.utils.set_random_seed(classes)
        train = root / f"{name}_data"
        labels = sorted(p.name for p in (data / "train").iterdir())[:classes]
        for label in labels:
            shutil.copytree(data / "train" / label, train / label)
        run = root / name
        run.mkdir()
        model = build_model(classes)
        x = np.stack([to_model_input(cv2.imread(str(p)), "bgr", 64) for c in labels
                      for p in sorted((train / c).iterdir())]).astype(np.float32)
        y = np.concatenate([np.full(len(list((train / c).iterdir())), i) for i, c in enumerate(labels)])
        model.compile("adam", "binary_crossentropy" if classes == 2 else "sparse_categorical_crossentropy")
        model.fit(x, y, epochs=8, batch_size=8, verbose=0)  # a few seconds: scores that differ per image
        model.save(run / MODEL_FILE)
        save_spec(run / SPEC_FILE, ModelSpec(labels=tuple(labels), head="sigmoid" if classes == 2 else "softmax",
                                            train_dir=str(train)))
        made[name] = convert_run(run, "int8", calibration=32).path
        if name == "binary":  # a float artifact too: its input needs the (identity) normalisation metadata
            made["binary_float32"] = convert_run(run, "float32").path
    return made, frames


def _edgecls_tops(model: Path, frames: Path, out: Path) -> list[str]:
    proc = run_cli("run", "--model", str(model), "--source", str(frames), "--headless", "--quiet",
                   "--jsonl", str(out), "--stats-every", "0")
    assert proc.returncode == 0, proc.stderr
    records = sorted((r for r in (json.loads(line) for line in out.read_text().splitlines()) if "event" not in r),
                     key=lambda r: r["frame"])
    return [r["label"] for r in records]


@pytest.mark.slow
@pytest.mark.parametrize("client", list(CLIENTS))
@pytest.mark.parametrize("kind", ["binary", "multiclass", "binary_float32"])
def test_standard_client_loads_the_artifact_and_agrees(client: str, kind: str, artifacts: tuple[dict[str, Path], Path],
                                                       tmp_path: Path) -> None:
    python = _client(client)
    models, frames = artifacts
    images = sorted(frames.glob("*.png"))
    proc = subprocess.run([python, "-c", CLIENT_CODE[client], str(models[kind]), *map(str, images)],
                          capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    theirs = json.loads(proc.stdout.strip().splitlines()[-1])
    ours = _edgecls_tops(models[kind], frames, tmp_path / "run.jsonl")
    agreement = float(np.mean(np.array(theirs) == np.array(ours)))
    print(f"{client} on the {kind} artifact: loads, labels {sorted(set(theirs))}, "
          f"top-1 equal to edgecls run on {agreement:.2%} of {len(images)} images")
    assert len(theirs) == len(ours) == len(images)
    assert len(set(ours)) > 1, "every image got the same label: the comparison would prove nothing"
    assert agreement == 1.0, list(zip(theirs, ours, strict=True))
