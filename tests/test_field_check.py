"""Field export and field check with real parts: the session's trained run, its int8 and
float32 artifacts, LiteRT on the CPU, and bundles corrupted the ways copies go wrong."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import assert_one_line_error, run_cli

from edgecls.bundle import (
    ARRAY_FILES,
    MANIFEST,
    BundleItem,
    Tolerance,
    _pack,
    open_bundle,
    write_bundle,
)


@pytest.fixture(scope="module")
def bundle(trained_run: Path, int8_model: Path, demo_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder bundle of 60 test images, written by the CLI as a user would."""
    out = tmp_path_factory.mktemp("field") / "bundle"
    proc = run_cli("field", "export", str(trained_run), "--data", str(demo_data / "test"), "--out", str(out),
                   "--count", "60", "--json", str(out.with_suffix(".json")), check=True)
    summary = json.loads(out.with_suffix(".json").read_text())
    assert summary["count"] == 60 and summary["boundary"] == 16 and 0.5 < summary["host_top1_agreement"] <= 1
    assert "60 images" in proc.stdout and "16 at the decision boundary" in proc.stdout, proc.stdout
    return out


def check(model: Path, bundle: Path, tmp_path: Path, *extra: str) -> tuple[subprocess.CompletedProcess[str], dict]:
    out = tmp_path / "check.json"
    proc = run_cli("field", "check", "--model", str(model), "--bundle", str(bundle), "--json", str(out), *extra)
    assert "Traceback" not in proc.stderr, proc.stderr
    print(proc.stdout, proc.stderr)
    return proc, json.loads(out.read_text()) if out.exists() else {}


def copy_bundle(bundle: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(bundle, tmp_path / "copy"))


def rewrite(bundle: Path, out: Path, **arrays: np.ndarray) -> Path:
    """The same bundle with some arrays replaced, re-hashed: what a host with another
    preprocessing would have written."""
    with open_bundle(bundle) as b:
        items = list(b.items)
        images = [b.image_path(it).read_bytes() for it in items]
        current = {"tensors": b.tensors, "float_probs": b.float_probs, "int8_raw": b.int8_raw,
                   "int8_raw_builtin": b.int8_raw_builtin}
        current.update(arrays)
        return write_bundle(out, model_name=b.model_name, model_sha256=b.model_sha256, edgetpu_sha256=b.edgetpu_sha256,
                            spec=b.spec, items=items, images=images, arrays=current, host=b.host,
                            tolerances=dict(b.tolerances))


def test_bundle_contents(bundle: Path, int8_model: Path) -> None:
    import hashlib

    manifest = json.loads((bundle / MANIFEST).read_text())
    assert manifest["model"]["sha256"] == hashlib.sha256(int8_model.read_bytes()).hexdigest()
    assert manifest["counts"]["per_class"] == {"circle": 30, "cross": 30}
    assert set(manifest["tolerances"]) >= {"cpu_max_raw_steps", "min_top1_agreement", "max_preprocess_diff"}
    host = manifest["host"]["host_top1_agreement"]
    assert manifest["tolerances"]["min_top1_agreement"]["value"] == pytest.approx(host - 0.01)
    assert all(t["reason"] for t in manifest["tolerances"].values())
    with open_bundle(bundle) as b:
        assert b.tensors.shape == (60, 64, 64, 3) and b.tensors.dtype == np.uint8
        assert b.int8_raw.dtype == np.uint8 and b.float_probs.shape == (60, 2)
        boundary = [it.margin for it in b.items if it.selection == "boundary"]
        others = [it.margin for it in b.items if it.selection == "stratified"]
        assert len(boundary) == 16 and max(boundary) <= np.median(others), "the boundary items are the least certain"
        for it in b.items:
            assert b.image_path(it).read_bytes() == Path(it.source).read_bytes(), "originals are byte for byte"


def test_check_passes_on_the_bundled_model(bundle: Path, int8_model: Path, tmp_path: Path) -> None:
    proc, report = check(int8_model, bundle, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert report["passed"] and report["figures"]["runtime"]["max_raw_steps"] == 0
    assert report["figures"]["preprocess"]["items_differing"] == 0
    limit = report["figures"]["tolerances"]["min_top1_agreement"]["value"]
    assert report["figures"]["agreement"]["top1_agreement"] >= limit > 0.5
    assert "field check passed" in proc.stdout


def test_check_passes_from_archives(bundle: Path, int8_model: Path, tmp_path: Path) -> None:
    for suffix in (".tar", ".zip"):
        archive = tmp_path / f"b{suffix}"
        archive.write_bytes(_pack(bundle, suffix))
        proc, report = check(int8_model, archive, tmp_path)
        assert proc.returncode == 0 and report["passed"], proc.stderr


def test_check_fails_on_a_float32_model(bundle: Path, int8_model: Path, float32_model: Path, tmp_path: Path) -> None:
    import hashlib

    proc, report = check(float32_model, bundle, tmp_path)
    assert proc.returncode == 1
    assert not report["checks"]["hash"]["passed"] and not report["checks"]["runtime"]["passed"]
    line = proc.stderr.strip().splitlines()[-1]
    assert hashlib.sha256(float32_model.read_bytes()).hexdigest() in line
    assert hashlib.sha256(int8_model.read_bytes()).hexdigest() in line, "both hashes on the failure line"


def test_check_fails_on_a_recalibrated_int8_model(trained_run: Path, bundle: Path, tmp_path: Path) -> None:
    """Same weights, same int8 format, another calibration: top-1 may well agree, but the
    raw outputs are not the host's, and the hash says why."""
    from edgecls.convert.export import convert_run

    other = convert_run(trained_run, "int8", tmp_path / "recal.tflite", calibration=16).path
    proc, report = check(other, bundle, tmp_path)
    assert proc.returncode == 1
    assert not report["checks"]["hash"]["passed"]
    assert not report["checks"]["runtime"]["passed"] and report["figures"]["runtime"]["max_raw_steps"] > 0
    assert "raw outputs vs host int8" in proc.stderr


@pytest.mark.parametrize("name", ["grey", "softmax3_f32"])
def test_check_fails_on_models_that_cannot_take_the_bundle(name: str, bundle: Path, tmp_path: Path,
                                                           tmp_path_factory: pytest.TempPathFactory) -> None:
    """Another model altogether (a grey 64x64x1 input; three outputs for two labels): failed
    figures with the reason, not a crash."""
    from device_helpers import cached_plain_models

    proc, report = check(cached_plain_models(tmp_path_factory)[name], bundle, tmp_path)
    assert proc.returncode == 1
    assert not report["checks"]["hash"]["passed"] and not report["checks"]["runtime"]["passed"]
    assert not report["checks"]["agreement"]["passed"]
    assert report["checks"]["preprocess"]["passed"], "the device's preprocessing is not the model's fault"
    assert "not the bundled model" in report["checks"]["runtime"]["detail"]


def test_check_fails_on_swapped_colour_channels_on_the_device(bundle: Path, int8_model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A device-side preprocessing change (R and B swapped after resizing): the runtime
    still matches on the stored tensors, the preprocessing figure fails and names it."""
    import edgecls.device.field as field

    real = field.to_model_input
    monkeypatch.setattr(field, "to_model_input", lambda image, colour, size: real(image, colour, size)[..., ::-1])
    report = field.field_check(int8_model, bundle)
    rows = {r.key: r for r in report.rows}
    assert not report.passed
    assert rows["hash"].passed and rows["runtime"].passed
    assert not rows["preprocess"].passed and "red and blue swapped" in rows["preprocess"].detail
    assert rows["preprocess"].figure == "0 of 60 identical"


def test_check_fails_when_the_bundle_holds_bgr_tensors(bundle: Path, int8_model: Path, tmp_path: Path) -> None:
    """The other direction, through the CLI: a host that stored BGR tensors (and ran its
    int8 model on them) against a device that prepares RGB."""
    from edgecls.device.backends import BackendOptions, open_backend
    from edgecls.device.classify import make_input_encoder

    with open_bundle(bundle) as b:
        bgr = np.ascontiguousarray(b.tensors[..., ::-1])
    backend = open_backend("cpu", int8_model, BackendOptions())
    encode = make_input_encoder(backend.input)
    raw = np.stack([np.array(backend.invoke(encode(t))).reshape(-1) for t in bgr])
    bad = rewrite(bundle, tmp_path / "bgr", tensors=bgr, int8_raw=raw)
    proc, report = check(int8_model, bad, tmp_path)
    assert proc.returncode == 1
    assert report["checks"]["hash"]["passed"] and report["checks"]["runtime"]["passed"]
    assert not report["checks"]["preprocess"]["passed"]
    assert "device preprocessing vs stored tensors" in proc.stderr.splitlines()[-1]


def test_bundle_round_trip_keeps_tolerances(bundle: Path, tmp_path: Path) -> None:
    with open_bundle(bundle) as b:
        tol = dict(b.tolerances)
    tol["min_top1_agreement"] = Tolerance(1.0, "stricter for this test")
    with open_bundle(bundle) as b:
        out = write_bundle(tmp_path / "strict.zip", model_name=b.model_name, model_sha256=b.model_sha256,
                           edgetpu_sha256=None, spec=b.spec, items=list(b.items),
                           images=[b.image_path(it).read_bytes() for it in b.items],
                           arrays={"tensors": b.tensors, "float_probs": b.float_probs, "int8_raw": b.int8_raw,
                                   "int8_raw_builtin": b.int8_raw_builtin},
                           host=b.host, tolerances=tol)
    with open_bundle(out) as b2:
        assert b2.tolerances["min_top1_agreement"].value == 1.0
        assert isinstance(b2.items[0], BundleItem)


def test_bad_bundles(bundle: Path, int8_model: Path, tmp_path: Path) -> None:
    def run(b: Path) -> subprocess.CompletedProcess[str]:
        return run_cli("field", "check", "--model", str(int8_model), "--bundle", str(b))

    assert_one_line_error(run(tmp_path / "none"), "does not exist")
    empty = tmp_path / "empty"
    empty.mkdir()
    assert_one_line_error(run(empty), "manifest.json is missing")
    missing = copy_bundle(bundle, tmp_path / "m")
    first = sorted((missing / "images").iterdir())[0]
    first.unlink()
    assert_one_line_error(run(missing), f"incomplete: 1 of {60 + len(ARRAY_FILES)} files missing (images/{first.name})")
    corrupt = copy_bundle(bundle, tmp_path / "c")
    data = bytearray((corrupt / "tensors.npy").read_bytes())
    data[-100] ^= 0xFF
    (corrupt / "tensors.npy").write_bytes(bytes(data))
    assert_one_line_error(run(corrupt), "corrupt: tensors.npy does not match its recorded sha256")
    manifest = copy_bundle(bundle, tmp_path / "j")
    (manifest / MANIFEST).write_text((manifest / MANIFEST).read_text()[:-200])
    assert_one_line_error(run(manifest), "manifest.json is not valid JSON")
    truncated = tmp_path / "t.tar"
    truncated.write_bytes(_pack(bundle, ".tar")[:20000])
    assert_one_line_error(run(truncated), "truncated or corrupt")
    assert_one_line_error(run(int8_model), "neither a folder nor a .tar/.zip archive")


@pytest.mark.skipif(Path("/usr/lib/x86_64-linux-gnu/libedgetpu.so.1").exists()
                    or Path("/usr/lib/aarch64-linux-gnu/libedgetpu.so.1").exists(), reason="an Edge TPU runtime is installed")
def test_check_on_the_edgetpu_without_its_runtime(bundle: Path, int8_model: Path) -> None:
    assert_one_line_error(run_cli("field", "check", "--model", str(int8_model), "--bundle", str(bundle), "--edgetpu"),
              "libedgetpu1-std")


def test_export_bad_input(trained_run: Path, demo_data: Path, bundle: Path, tmp_path: Path) -> None:
    def export(*args: str) -> subprocess.CompletedProcess[str]:
        return run_cli("field", "export", *args)

    assert_one_line_error(export(str(trained_run), "--data", str(demo_data / "test"), "--out", str(bundle)), "exists")
    assert_one_line_error(export(str(trained_run), "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "b")), "does not exist")
    assert_one_line_error(export(str(trained_run), "--data", str(demo_data / "test"), "--out", str(tmp_path / "b"),
                     "--model", str(tmp_path / "nope.tflite")), "does not exist")


def test_field_check_never_imports_tensorflow(bundle: Path, int8_model: Path) -> None:
    code = f"""
import sys
import edgecls.cli
edgecls.cli._register_subcommands()
from pathlib import Path
from edgecls.device.field import field_check
report = field_check(Path({str(int8_model)!r}), Path({str(bundle)!r}))
assert report.passed, report.failures()
print('TF-MODULES', sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras', 'tf_keras')))
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "TF-MODULES []" in proc.stdout


def test_reference_matches_the_kernels_the_device_runs(bundle: Path, int8_model: Path) -> None:
    """tflite-runtime 2.14 runs int8 graphs on TFLite's builtin kernels, which round a few
    outputs differently from ai-edge-litert's default XNNPACK: the bundle carries both
    references and the check compares against the one the device's interpreter really ran."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    from edgecls.device.backends import BackendOptions, open_backend
    from edgecls.device.field import reference_outputs

    ref = Interpreter(model_path=str(int8_model),
                      experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    ref.allocate_tensors()
    with open_bundle(bundle) as b:
        builtin = []
        for t in b.tensors:
            ref.set_tensor(ref.get_input_details()[0]["index"], t[None])
            ref.invoke()
            builtin.append(ref.get_tensor(ref.get_output_details()[0]["index"]).reshape(-1))
        assert np.array_equal(np.stack(builtin), b.int8_raw_builtin)
        backend = open_backend("cpu", int8_model, BackendOptions())
        try:
            assert backend.delegated_partitions() > 0  # ai-edge-litert: XNNPACK took the graph
            want, kernels = reference_outputs(b, backend)
            assert kernels == "cpu, XNNPACK" and want is b.int8_raw
            backend.delegated_partitions = lambda: 0  # type: ignore[method-assign]  # as tflite-runtime 2.14 reports
            want, kernels = reference_outputs(b, backend)
            assert kernels == "cpu, builtin kernels" and want is b.int8_raw_builtin
        finally:
            backend.close()
