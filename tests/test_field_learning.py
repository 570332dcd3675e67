"""The proof that the field loop helps: capture on the device, review, retrain, measure.

The session's trained run (built-in shapes, fixed epochs) meets a field it never saw: every
scene behind a fence of dark bars. The device runs on a recording of that field with
``--capture`` (uncertainty rules plus a plain sample, :data:`CAPTURE_RULES`), the captures are imported for review
and labelled with their known truth (what the reviewer does), and the model is trained
again with ``--extra-data``. On held-out fenced frames accuracy must rise by at least
``MIN_FIELD_GAIN``; on the original test split it must not fall by more than
``MAX_TEST_DROP``.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
from conftest import TRAINED_RUN_EPOCHS, run_cli

from edgecls.demo_field import write_field_folder

pytestmark = pytest.mark.slow

#: Accuracy points the retrained model must gain on held-out fenced frames. Measured here
#: in two runs (357 and 276 captures of 1,200 fenced frames; the writer drops some on a busy
#: machine): 55.3 % -> 83.3 % and -> 87.0 %; 15 leaves room for that and for training noise.
MIN_FIELD_GAIN = 0.15
#: Accuracy points the retrained model may lose on the original test split. Measured:
#: 86.0 % -> 84.5 % and -> 86.75 %. Two 5-epoch runs of this CNN differ by a point or two on their own
#: (the model is still learning at epoch 5), so 3 points is the bound, not a goal.
MAX_TEST_DROP = 0.03
FIELD_FRAMES = 1200
HELD_OUT = 300
#: The fence makes the model confidently wrong more often than unsure (measured: of 400
#: fenced frames 38 score under 0.9, and 26 of those are wrong, against 47 % wrong overall),
#: so the deployed rules add a plain sample (every 3rd frame: the recording alternates classes, so
#: every 2nd or 4th would sample one class only) to the uncertain ones, as a
#: field deployment would to see what the model does not know it gets wrong.
CAPTURE_RULES = "low-score:0.9,every:3"


@pytest.mark.timeout(1200)  # a whole retraining; at load 7 on 2 cores it outran the default 600 s
def test_capture_review_retrain_improves_on_the_shifted_field(trained_run: Path, int8_model: Path, demo_data: Path,
                                                              tmp_path: Path) -> None:
    from edgecls.evaluate import evaluate
    from edgecls.train import TrainOptions, train

    recording = tmp_path / "field"
    truth = write_field_folder(recording, FIELD_FRAMES, 2, "fence", seed=11)
    held = tmp_path / "held"
    write_field_folder(held, HELD_OUT, 2, "fence", seed=12, by_class=True)

    cap = tmp_path / "captures"
    run_cli("run", "--model", str(int8_model), "--source", str(recording), "--headless", "--quiet", "--stats-every", "0",
            "--capture", str(cap), "--capture-rule", CAPTURE_RULES, "--capture-rate", "100000/min",
            check=True)
    review = tmp_path / "review"
    run_cli("field", "import", str(cap), "--out", str(review), "--model", str(int8_model), check=True)
    # the reviewer: each capture into the folder of its true label
    reviewed = tmp_path / "reviewed"
    with (review / "index.csv").open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    wrong = 0
    for row in rows:
        record = json.loads((cap / f"{row['capture']}.json").read_text())
        label = truth[record["source_index"]]
        wrong += label != row["predicted"]
        (reviewed / label).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(review / row["file"], reviewed / label / Path(row["file"]).name)
    assert len(rows) >= 50, f"only {len(rows)} captures"

    retrained = tmp_path / "retrained"
    train(demo_data / "train", retrained, TrainOptions(epochs=TRAINED_RUN_EPOCHS, val_dir=demo_data / "val",
                                                       extra_data=(reviewed,)))
    before_field = evaluate(trained_run, held)[0].accuracy
    after_field = evaluate(retrained, held)[0].accuracy
    before_test = evaluate(trained_run, demo_data / "test")[0].accuracy
    after_test = evaluate(retrained, demo_data / "test")[0].accuracy
    print(f"\nfield proof: {len(rows)} captures of {FIELD_FRAMES} fenced frames ({wrong} the model got wrong); "
          f"held-out fenced accuracy {before_field:.2%} -> {after_field:.2%}; "
          f"original test accuracy {before_test:.2%} -> {after_test:.2%}")
    assert after_field >= before_field + MIN_FIELD_GAIN
    assert after_test >= before_test - MAX_TEST_DROP


def test_extra_data_with_an_unknown_class_is_refused(demo_data: Path, tmp_path: Path) -> None:
    extra = tmp_path / "review"
    (extra / "unknown").mkdir(parents=True)
    shutil.copyfile(next((demo_data / "test" / "circle").iterdir()), extra / "unknown" / "a.png")
    proc = run_cli("train", str(demo_data / "train"), "--out", str(tmp_path / "run"), "--extra-data", str(extra))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "has class folders that training folder" in lines[0] and "unknown" in lines[0], proc.stderr
    assert not (tmp_path / "run").exists()
