"""``edgecls field check``: prove on the device that it runs the host's model the host's way.

Four figures, each isolating one thing that can go wrong in the field:

(a) model hash: the file on the device is the one the bundle was made for;
(b) runtime: the device's interpreter (and delegate) on the *stored* tensors reproduces
    the host's raw int8 outputs (exactly on the CPU; within a stated step on the Edge TPU);
(c) end to end: the device's own preprocessing plus its runtime agree with the float
    model's top-1 at least as often as the bundle's threshold;
(d) preprocessing: decoding the original images (:func:`edgecls.images.read_image`, as a
    folder source does) and :func:`edgecls.preprocess.to_model_input` reproduce the stored
    tensors bit for bit.

No TensorFlow: numpy, OpenCV and the interpreter the live loop uses (its backends,
input encoder and dequantization), so what is checked is what runs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgecls.artifact import check_tflite
from edgecls.bundle import FieldBundle, file_sha256, open_bundle
from edgecls.heads import probabilities, top1
from edgecls.images import read_image
from edgecls.preprocess import to_model_input
from edgecls.tensorio import dequantize, make_input_encoder

from .backends import Backend, BackendOptions, open_backend
from .options import EDGETPU_DEVICE


@dataclass(frozen=True)
class CheckRow:
    """One figure: its value as text, the limit it is held to, pass or fail, and a detail."""

    key: str
    name: str
    figure: str
    limit: str
    passed: bool
    detail: str = ""


@dataclass(frozen=True)
class FieldCheckReport:
    model: str
    bundle: str
    backend: str
    count: int
    rows: tuple[CheckRow, ...]
    figures: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.rows)

    def failures(self) -> list[str]:
        return [r.detail if r.key == "hash" else f"{r.name} {r.figure} (limit {r.limit})" for r in self.rows if not r.passed]

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "bundle": self.bundle, "backend": self.backend, "count": self.count,
                "passed": self.passed, "failures": self.failures(),
                "checks": {r.key: {"name": r.name, "figure": r.figure, "limit": r.limit, "passed": r.passed,
                                   "detail": r.detail} for r in self.rows},
                "figures": self.figures}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"


def _hash_row(sha: str, bundle: FieldBundle, edgetpu: bool) -> CheckRow:
    want = bundle.edgetpu_sha256 if edgetpu else bundle.model_sha256
    name = "(a) model sha256"
    if want is None:
        return CheckRow("hash", name, sha[:16], "bundle has none", False,
                        "the bundle records no Edge TPU model: export it with the *_edgetpu.tflite beside the model")
    if sha == want:
        return CheckRow("hash", name, sha[:16], "= bundle", True, f"{sha}")
    return CheckRow("hash", name, sha[:16], f"= {want[:16]}", False,
                    f"model sha256 {sha} but the bundle was made for {want} ({bundle.model_name}): another model")


def _run(backend: Backend, tensors: np.ndarray) -> np.ndarray:
    encode = make_input_encoder(backend.input)
    return np.stack([np.array(backend.invoke(encode(t))).reshape(-1) for t in tensors])


def reference_outputs(bundle: FieldBundle, backend: Backend) -> tuple[np.ndarray, str]:
    """The host outputs to reproduce: from the same kernels the device runs.

    ai-edge-litert hands int8 graphs to XNNPACK by default; tflite-runtime 2.14's XNNPACK
    takes none, so it runs TFLite's builtin kernels, which round a few outputs differently.
    Which one ran is read from the interpreter (delegated partitions), not guessed.
    """
    if backend.name == "cpu" and backend.delegated_partitions() == 0:
        return bundle.int8_raw_builtin, "cpu, builtin kernels"
    return bundle.int8_raw, f"{backend.name}, XNNPACK" if backend.name == "cpu" else backend.name


def _runtime_row(raw: np.ndarray, bundle: FieldBundle, limit: float, backend: Backend) -> tuple[CheckRow, dict[str, Any]]:
    want, kernels = reference_outputs(bundle, backend)
    name = f"(b) raw outputs vs host int8 ({kernels})"
    if raw.dtype != want.dtype or raw.shape != want.shape:
        detail = (f"the model outputs {raw.dtype} x{raw.shape[1]}, the host int8 model {want.dtype} x{want.shape[1]}: "
                  "not the bundled model")
        return CheckRow("runtime", name, f"{raw.dtype} x{raw.shape[1]}", f"{want.dtype} x{want.shape[1]}", False, detail), {}
    steps = np.abs(raw.astype(np.int64) - want.astype(np.int64)) if raw.dtype.kind in "iu" else np.abs(raw - want)
    worst = float(steps.max()) if steps.size else 0.0
    differing = int(np.sum(np.any(steps > 0, axis=1)))
    fig = f"max {worst:g} step(s), {differing} of {len(raw)} differ"
    passed = worst <= limit
    detail = "identical to the host" if worst == 0 else f"{differing} item(s) differ from the host's int8 outputs"
    return CheckRow("runtime", name, fig, f"<= {limit:g} step(s)", passed, detail), {
        "max_raw_steps": worst, "items_differing": differing}


def _preprocess(bundle: FieldBundle) -> tuple[np.ndarray, list[str]]:
    """The device's tensors for the bundle's originals; undecodable files listed (zeros in their place)."""
    size = bundle.spec.input_size
    out = np.zeros_like(bundle.tensors)
    bad = []
    for n, item in enumerate(bundle.items):
        image = read_image(bundle.image_path(item))
        if image is None:
            bad.append(item.file)
            continue
        out[n] = to_model_input(image, "bgr", size)
    return out, bad


def _preprocess_row(device: np.ndarray, bundle: FieldBundle, undecodable: list[str], limit: float) -> tuple[CheckRow, dict[str, Any]]:
    stored = bundle.tensors
    diff = np.abs(device.astype(np.int16) - stored.astype(np.int16))
    per_item = diff.reshape(len(diff), -1).max(axis=1)
    bad = np.flatnonzero(per_item > limit)
    worst = int(diff.max()) if diff.size else 0
    fig = f"{len(bundle.items) - len(bad)} of {len(bundle.items)} identical"
    if len(bad) == 0:
        detail = "every tensor reproduced bit for bit"
    elif undecodable:
        detail = f"{len(undecodable)} original(s) cannot be decoded here ({undecodable[0]}): this OpenCV lacks a codec"
    elif np.array_equal(device[bad][..., ::-1], stored[bad]):
        detail = "the device's tensors are the stored ones with red and blue swapped: a colour-order change in preprocessing"
    else:
        detail = (f"{int(np.count_nonzero(diff))} values differ, max |Δ| {worst}, first {bundle.items[bad[0]].file}: "
                  "the decoder, resize or colour order differs from the host")
    return CheckRow("preprocess", "(d) device preprocessing vs stored tensors", fig, f"max |Δ| <= {limit:g}",
                    len(bad) == 0, detail), {"items_differing": len(bad), "max_abs_diff": worst,
                                             "values_differing": int(np.count_nonzero(diff)), "undecodable": undecodable}


def _agreement_row(raw: np.ndarray, backend: Backend, bundle: FieldBundle, limit: float) -> tuple[CheckRow, dict[str, Any]]:
    name = "(c) top-1 agreement with float (device pipeline)"
    head, k = bundle.spec.head, len(bundle.labels)
    units = 1 if head == "sigmoid" and raw.shape[1] == 1 else k  # a converted sigmoid head gives [1 - p, p]
    if raw.shape[1] != units:
        return CheckRow("agreement", name, "n/a", f">= {limit:.2%}", False,
                        f"the model has {raw.shape[1]} outputs; the bundle's {head} head needs {units}"), {}
    probs = probabilities(dequantize(raw, backend.output), head)
    want = top1(bundle.float_probs)
    got = top1(probs)
    agree = float(np.mean(got == want))
    flips = [f"{bundle.items[i].file}: {bundle.labels[want[i]]}->{bundle.labels[got[i]]}" for i in np.flatnonzero(got != want)]
    boundary = np.array([it.selection == "boundary" for it in bundle.items])
    detail = (f"{len(flips)} flip(s), {int(np.sum((got != want) & boundary))} of them boundary cases"
              + (f"; first {flips[0]}" if flips else "") + f"; host int8 agreed {bundle.host.get('host_top1_agreement', float('nan')):.1%}")
    per_class = {label: float(np.mean(got[want == c] == c)) for c, label in enumerate(bundle.labels) if np.any(want == c)}
    return CheckRow("agreement", name, f"{agree:.2%}", f">= {limit:.2%}", agree >= limit, detail), {
        "top1_agreement": agree, "flips": flips, "per_class_agreement": per_class}


def field_check(model: Path, bundle_path: Path, *, edgetpu: bool = False, device: str = EDGETPU_DEVICE,
                num_threads: int = 1) -> FieldCheckReport:
    """Run the four checks of the module docstring; raises EdgeclsError only for unusable input."""
    check_tflite(model)
    with open_bundle(bundle_path) as bundle:
        sha = file_sha256(model)
        backend = open_backend("edgetpu" if edgetpu else "cpu", model, BackendOptions(num_threads, device))
        try:
            tol = bundle.tolerances
            limit = tol["edgetpu_max_raw_steps" if edgetpu else "cpu_max_raw_steps"].value
            device_tensors, undecodable = _preprocess(bundle)
            hash_row = _hash_row(sha, bundle, edgetpu)
            pre_row, pre = _preprocess_row(device_tensors, bundle, undecodable, tol["max_preprocess_diff"].value)
            size = bundle.spec.input_size
            if tuple(backend.input.shape) == (1, size, size, 3):
                runtime_row, runtime = _runtime_row(_run(backend, bundle.tensors), bundle, limit, backend)
                agree_row, agreement = _agreement_row(_run(backend, device_tensors), backend, bundle,
                                                      tol["min_top1_agreement"].value)
            else:  # another model altogether: it cannot even take the bundle's tensors
                shape = "x".join(map(str, backend.input.shape))
                why = f"the model takes {shape} input, the bundle's tensors are 1x{size}x{size}x3: not the bundled model"
                runtime_row = CheckRow("runtime", f"(b) raw outputs vs host int8 ({backend.name})", f"input {shape}",
                                       f"1x{size}x{size}x3", False, why)
                agree_row = CheckRow("agreement", "(c) top-1 agreement with float (device pipeline)", "n/a",
                                     f">= {tol['min_top1_agreement'].value:.2%}", False, why)
                runtime, agreement = {}, {}
        finally:
            backend.close()
        figures = {"model_sha256": sha, "bundle_model_sha256": bundle.model_sha256,
                   "bundle_edgetpu_sha256": bundle.edgetpu_sha256, "runtime": runtime, "agreement": agreement,
                   "preprocess": pre, "tolerances": {k: {"value": t.value, "reason": t.reason} for k, t in tol.items()}}
        return FieldCheckReport(str(model), str(bundle_path), backend.name, len(bundle.items),
                                (hash_row, runtime_row, agree_row, pre_row), figures)
