"""Make the x86 host's artifacts for the aarch64 check: a trained run and its int8 model.

    host_model.py train RUN_DIR               demo data + a short ``edgecls train`` (cached by the caller)
    host_model.py int8 RUN_DIR OUT.tflite     full-integer int8, uint8 in and out

The int8 model comes from edgecls's own conversion (``convert_run``, the one conversion
recipe), with its labels.txt beside it, which the device runtime reads. Host only:
imports TensorFlow.
"""

from __future__ import annotations

import argparse
import os
import shutil
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

#: Small on purpose: the check needs a real trained model, not a good one.
TRAIN_PER_CLASS = 2000
EPOCHS = 10
REPRESENTATIVE = 100


def cmd_train(run_dir: Path) -> int:
    from edgecls.demo_data import DemoDataOptions, generate
    from edgecls.train import TrainOptions, train

    data = run_dir.with_name(run_dir.name + "-data")
    shutil.rmtree(data, ignore_errors=True)
    generate(data, DemoDataOptions(2, TRAIN_PER_CLASS, 40, seed=11, val_per_class=0))
    train(data / "train", run_dir, TrainOptions(epochs=EPOCHS, seed=0, force=True))
    return 0


def _export_with_edgecls(run_dir: Path, out: Path) -> str:
    """edgecls's own int8 export (the one conversion recipe); returns how the model was made."""
    from edgecls.convert.export import convert_run

    # Calibrate on the training images beside the run, not on the path the run recorded: the
    # cache folder may have moved since it was trained (EDGECLS_AARCH64_CACHE, a copied cache).
    convert_run(run_dir, "int8", out, data_dir=run_dir.with_name(run_dir.name + "-data") / "train")
    return "edgecls.convert.export.convert_run(run, 'int8')"


def cmd_int8(run_dir: Path, out: Path) -> int:
    how = _export_with_edgecls(run_dir, out)
    out.with_suffix(".how").write_text(how + "\n")
    print(f"host_model: {out} ({out.stat().st_size} bytes) from {how}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("train").add_argument("run_dir", type=Path)
    p = sub.add_parser("int8")
    p.add_argument("run_dir", type=Path)
    p.add_argument("out", type=Path)
    args = parser.parse_args()
    return cmd_train(args.run_dir) if args.cmd == "train" else cmd_int8(args.run_dir, args.out)


if __name__ == "__main__":
    raise SystemExit(main())
