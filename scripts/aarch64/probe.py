"""The measurements of the aarch64 check, run the same way on the x86 host and in the arm64 chroot.

Each command writes its results to a folder that scripts/aarch64/compare.py then compares
side by side. Only the device side's dependencies are imported here (numpy, OpenCV,
edgecls's core and device runtime, a TFLite interpreter): never TensorFlow.

    probe.py info OUT.json                 versions, and whether TensorFlow got imported
    probe.py preprocess INPUTS OUT.npz     to_model_input on every frame, file and video frame
    probe.py infer MODEL TENSORS.npz OUT.npz  the int8 model's raw outputs on stored tensors
    probe.py sitevenv OUT.json             in a --system-site-packages venv: whose numpy
                                           loads, and whether apt's python3-pywt still imports

``--inject naive-area`` (preprocess only) swaps edgecls's resize for one plain
``cv2.resize(..., INTER_AREA)`` in this process: the design edgecls rejected, kept here
to show that the check catches its x86/aarch64 differences. It never touches the product.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import json
import os
import pkgutil
import platform
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

#: Distributions whose versions go into the verdict table.
DISTRIBUTIONS = ("edgecls", "numpy", "opencv-python-headless", "ai-edge-litert", "tflite-runtime", "typer")
#: Modules that must never be imported on the device.
FORBIDDEN_MODULES = ("tensorflow", "keras", "tf_keras")


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def cmd_info(out: Path) -> int:
    """Import the whole device runtime, then report what got imported alongside it."""
    import edgecls
    import edgecls.preprocess

    imported, failed = ["edgecls", "edgecls.preprocess"], {}
    try:
        device = importlib.import_module("edgecls.device")
        imported.append("edgecls.device")
        for mod in pkgutil.walk_packages(device.__path__, "edgecls.device."):
            try:
                importlib.import_module(mod.name)
                imported.append(mod.name)
            except Exception as err:  # report every failure, do not stop at the first
                failed[mod.name] = f"{type(err).__name__}: {err}"
    except Exception as err:
        failed["edgecls.device"] = f"{type(err).__name__}: {err}"
    try:
        name, _ = _interpreter_class()
        imported.append(name)
    except ImportError as err:
        failed["interpreter"] = str(err)
    info = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "libc": "-".join(platform.libc_ver()),
        "qemu_cpu": os.environ.get("QEMU_CPU"),
        "edgecls_file": edgecls.__file__,
        "resize": edgecls.preprocess.KERNEL_STATUS.split(" (")[0],
        "resize_detail": edgecls.preprocess.KERNEL_STATUS,
        "versions": {d: _version(d) for d in DISTRIBUTIONS},
        "imported": imported,
        "import_failures": failed,
        "forbidden_loaded": sorted(m for m in FORBIDDEN_MODULES if m in sys.modules),
    }
    out.write_text(json.dumps(info, indent=2) + "\n")
    return 0


def _naive_area(image: np.ndarray, size: int = 64, *, swap_rb: bool = False) -> np.ndarray:
    import cv2

    out = cv2.resize(np.ascontiguousarray(image[:, :, :3]), (size, size), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(out[:, :, ::-1]) if swap_rb else out


def cmd_preprocess(inputs: Path, out: Path, inject: str | None) -> int:
    import cv2

    import edgecls.preprocess as pre
    from edgecls.images import load_model_input

    if inject == "naive-area":
        pre.resize_area = _naive_area  # type: ignore[assignment]  # this process only
    tensors: dict[str, Any] = {}  # Any: savez_compressed types its **kwds loosely
    decoded: dict[str, str] = {}
    for path in sorted((inputs / "arrays").glob("*.npy")):
        tensors[f"arrays/{path.name}"] = pre.to_model_input(np.load(path), "bgr")
    images = inputs / "images"
    for path in sorted(p for p in images.rglob("*") if p.is_file()):
        tensor = load_model_input(path)
        if tensor is None:
            raise SystemExit(f"probe: cannot decode {path}")
        tensors[f"images/{path.relative_to(images)}"] = tensor
    for video in sorted(inputs.glob("video-*")):
        cap = cv2.VideoCapture(str(video))
        i = 0
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            decoded[f"{video.name}/{i:04d}"] = hashlib.sha256(frame.tobytes()).hexdigest()
            tensors[f"{video.name}/{i:04d}"] = pre.to_model_input(frame, "bgr")
            i += 1
        cap.release()
        if i == 0:
            raise SystemExit(f"probe: OpenCV read no frame from {video}")
    np.savez_compressed(out, **tensors)
    out.with_suffix(".decoded.json").write_text(json.dumps(decoded, indent=1) + "\n")
    return 0


def _interpreter_class() -> tuple[str, type]:
    """LiteRT's interpreter, else the legacy tflite-runtime's (the device's own choice order)."""
    try:
        from ai_edge_litert.interpreter import Interpreter

        return "ai_edge_litert.interpreter", Interpreter
    except ImportError:
        from tflite_runtime.interpreter import Interpreter

        return "tflite_runtime.interpreter", Interpreter


def _invoker(model: Path):  # type: ignore[no-untyped-def]
    """The device runtime's CPU backend (what ``edgecls run`` uses), else a bare interpreter."""
    try:
        from edgecls.device.backends import BackendOptions, open_backend
    except ImportError:
        name, interpreter_cls = _interpreter_class()
        interpreter = interpreter_cls(model_path=str(model), num_threads=1)
        interpreter.allocate_tensors()
        inp = interpreter.get_input_details()[0]
        out = interpreter.get_output_details()[0]

        def invoke(tensor: np.ndarray) -> np.ndarray:
            interpreter.set_tensor(inp["index"], tensor.astype(inp["dtype"]))
            interpreter.invoke()
            return interpreter.get_tensor(out["index"])

        return f"bare {name}", invoke
    backend = open_backend("cpu", model, BackendOptions(num_threads=1))
    dtype = backend.input.dtype
    runtime = getattr(backend, "runtime", None)
    label = f"edgecls.device {backend.name} backend" + (f", {runtime.name} {runtime.version}" if runtime else "")
    return label, lambda tensor: backend.invoke(tensor.astype(dtype))


def cmd_infer(model: Path, tensors: Path, out: Path) -> int:
    """Run the model on each stored tensor (the substance of a field check); keep raw outputs."""
    name, invoke = _invoker(model)
    results: dict[str, Any] = {}
    with np.load(tensors) as data:
        for key in sorted(data.files):
            results[key] = np.array(invoke(data[key][None]), copy=True)
    np.savez_compressed(out, **results)
    out.with_suffix(".json").write_text(json.dumps({"backend": name, "count": len(results)}) + "\n")
    return 0


def cmd_sitevenv(out: Path) -> int:
    """Pi OS's venv: apt's numpy must stay the one that loads, and apt's compiled modules import."""
    import numpy

    result: dict[str, object] = {"numpy": numpy.__version__, "numpy_file": numpy.__file__,
                                 "numpy_from_apt": numpy.__file__.startswith("/usr/lib/python3/dist-packages/"),
                                 "prefix": sys.prefix,
                                 "system_site": "include-system-site-packages = true"
                                 in (Path(sys.prefix) / "pyvenv.cfg").read_text(errors="replace")}
    try:
        import pywt  # type: ignore[import-not-found]  # apt's python3-pywt, built against apt's numpy

        result["apt_module"] = f"pywt {pywt.__version__} from {Path(pywt.__file__).parent}"
        result["apt_module_ok"] = bool(np.allclose(pywt.idwt(*pywt.dwt([1.0, 2.0, 3.0, 4.0], "haar"), "haar"),
                                                   [1.0, 2.0, 3.0, 4.0]))
    except Exception as err:
        result["apt_module"] = f"{type(err).__name__}: {err}"
        result["apt_module_ok"] = False
    import edgecls.device.cli  # the runtime imports alongside it
    import edgecls.preprocess

    result["edgecls"] = _version("edgecls")
    result["resize"] = edgecls.preprocess.KERNEL_STATUS
    out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("info")
    p.add_argument("out", type=Path)
    p = sub.add_parser("preprocess")
    p.add_argument("inputs", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("--inject", choices=["naive-area"])
    p = sub.add_parser("infer")
    p.add_argument("model", type=Path)
    p.add_argument("tensors", type=Path)
    p.add_argument("out", type=Path)
    p = sub.add_parser("sitevenv")
    p.add_argument("out", type=Path)
    args = parser.parse_args()
    if args.cmd == "sitevenv":
        return cmd_sitevenv(args.out)
    if args.cmd == "info":
        return cmd_info(args.out)
    if args.cmd == "preprocess":
        return cmd_preprocess(args.inputs, args.out, args.inject)
    return cmd_infer(args.model, args.tensors, args.out)


if __name__ == "__main__":
    raise SystemExit(main())
