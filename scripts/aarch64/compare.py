"""Compare what the x86 host and the emulated aarch64 device measured; print one verdict table.

    compare.py HOST_DIR DEVICE_DIR --suite S --runtime R [--meta K=V ...] [--json OUT]

Each folder holds what scripts/aarch64/probe.py (and the check's ``edgecls`` runs) wrote
there. Every comparison is exact: a tensor, an int8 output, a label or a score either
matches bit for bit or the row fails; there are no tolerances to tune. Every row is either
measured or reported NOT RUN (naming what did not run), and NOT RUN never counts as passed:
exit status 1 when any row fails or did not run, 0 only when every row passed (NOTE rows
report a difference upstream of edgecls, such as FFmpeg's MJPEG decoder).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

PASS, FAIL, NOT_RUN, NOTE = "PASS", "FAIL", "NOT RUN", "NOTE"
#: The answer in an ``edgecls run --jsonl`` record; the rest (ts, *_ms, fps, ...) is timing.
ANSWER_KEYS = ("frame", "source_index", "label", "index", "score", "top")


@dataclass(frozen=True)
class Row:
    check: str
    result: str
    detail: str


def _load(path: Path) -> Any:
    return json.loads(path.read_text()) if path.is_file() else None


def compare_tensors(host: Path, device: Path, group: str, prefix: tuple[str, ...]) -> Row:
    """Exact comparison of the arrays whose keys start with one of ``prefix``."""
    if not host.is_file() or not device.is_file():
        return Row(group, FAIL, f"missing {host.name if not host.is_file() else device.name}")
    with np.load(host) as h, np.load(device) as d:
        keys = sorted(k for k in h.files if k.startswith(prefix))
        missing = sorted(set(keys) ^ {k for k in d.files if k.startswith(prefix)})
        if not keys:
            return Row(group, FAIL, "nothing to compare")
        bad: list[str] = []
        values = 0
        worst = 0
        for key in keys:
            if key not in d.files:
                continue
            a, b = h[key], d[key]
            if a.shape != b.shape or a.dtype != b.dtype:
                bad.append(f"{key}: {a.dtype}{a.shape} vs {b.dtype}{b.shape}")
                continue
            diff = np.abs(a.astype(np.int64) - b.astype(np.int64))
            n = int(np.count_nonzero(diff))
            if n:
                values += n
                worst = max(worst, int(diff.max()))
                bad.append(f"{key}: {n} of {a.size} values differ (max |diff| {int(diff.max())})")
    if missing:
        return Row(group, FAIL, f"{len(missing)} present on one side only, e.g. {missing[0]}")
    if bad:
        shown = "; ".join(bad[:3]) + (f"; ... {len(bad) - 3} more" if len(bad) > 3 else "")
        return Row(group, FAIL, f"{len(bad)} of {len(keys)} differ ({values} values, max |diff| {worst}): {shown}")
    return Row(group, PASS, f"{len(keys)} of {len(keys)} bit-identical")


def compare_decoded(host: Path, device: Path, video: str, label: str) -> Row:
    h = {k: v for k, v in (_load(host) or {}).items() if k.startswith(video + "/")}
    d = {k: v for k, v in (_load(device) or {}).items() if k.startswith(video + "/")}
    if not h:
        return Row(label, FAIL, "the host decoded no frame")
    if h.keys() != d.keys():
        return Row(label, FAIL, f"host decoded {len(h)} frames, device {len(d)}")
    bad = [k for k in h if h[k] != d[k]]
    if bad:
        return Row(label, FAIL, f"{len(bad)} of {len(h)} decoded frames differ, first {bad[0]}")
    return Row(label, PASS, f"{len(h)} of {len(h)} frames bit-identical")


def _frames(path: Path) -> list[dict[str, Any]]:
    """The per-frame records of an ``edgecls run --jsonl`` file (not its run_start / run_end)."""
    records = (json.loads(line) for line in path.read_text().splitlines() if line.strip())
    return [r for r in records if "event" not in r]


def _answer(record: dict[str, Any]) -> dict[str, Any]:
    return {k: record[k] for k in ANSWER_KEYS if k in record}


def _same_labels(host: Path, device: Path) -> bool:
    h = [r.get("label") for r in _frames(host)]
    d = [r.get("label") for r in _frames(device)]
    return bool(h) and h == d


def compare_run(host: Path, device: Path, label: str) -> Row:
    if not host.exists():
        return Row(label, NOT_RUN, "the host's 'edgecls run' wrote no JSON lines (see host/run.log)")
    if not device.exists():
        log = device.with_suffix(".log")
        last = [line for line in log.read_text().splitlines() if line.strip()][-1:] if log.is_file() else []
        return Row(label, FAIL, "the device run wrote no JSON lines" + (f": {last[0].strip()[:160]}" if last else ""))
    h = [_answer(r) for r in _frames(host)]
    d = [_answer(r) for r in _frames(device)]
    if not h:
        return Row(label, FAIL, "the host run wrote no records")
    if len(h) != len(d):
        return Row(label, FAIL, f"host wrote {len(h)} records, device {len(d)}")
    bad = [i for i, (a, b) in enumerate(zip(h, d, strict=True)) if a != b]
    if bad:
        i = bad[0]
        diff = {k: (h[i].get(k), d[i].get(k)) for k in sorted(set(h[i]) | set(d[i])) if h[i].get(k) != d[i].get(k)}
        return Row(label, FAIL, f"{len(bad)} of {len(h)} records differ; first #{i}: {json.dumps(diff)[:200]}")
    if "label" not in h[0] or "score" not in h[0]:
        return Row(label, FAIL, f"records carry no label and score: {sorted(h[0])}")
    labels = sorted({r["label"] for r in h})
    scores = sorted({r["score"] for r in h})
    return Row(label, PASS, f"{len(h)} of {len(h)} records identical ({', '.join(k for k in ANSWER_KEYS if k in h[0])}); "
                            f"labels {', '.join(labels)}; {len(scores)} distinct scores {scores[0]}..{scores[-1]}")


def _exact_field(report: dict[str, Any]) -> list[str]:
    """Why a passing field check is still not exact agreement (its limits allow a little)."""
    figures = report.get("figures", {})
    out = []
    if (figures.get("runtime") or {}).get("max_raw_steps", 0) != 0:
        out.append(f"raw outputs differ by up to {figures['runtime']['max_raw_steps']} step(s)")
    if (figures.get("preprocess") or {}).get("max_abs_diff", 0) != 0:
        out.append(f"tensors differ by up to {figures['preprocess']['max_abs_diff']}")
    return out


def compare_field(host: Path, device: Path, label: str) -> Row:
    if not host.with_name("field-export.log").exists():
        return Row(label, NOT_RUN, "no field bundle was exported on the host")
    href, dref = _load(host), _load(device)
    for side, report, path in (("host", href, host), ("device", dref, device)):
        if report is None:
            log = path.with_suffix(".log")
            last = [line for line in log.read_text().splitlines() if line.strip()][-1:] if log.is_file() else []
            return Row(label, FAIL, f"no report from the {side}" + (f": {last[0].strip()[:160]}" if last else ""))
    if not href or not href.get("passed"):
        return Row(label, FAIL, f"the host's own field check fails: {'; '.join((href or {}).get('failures', []))[:200]}")
    if not dref or not dref.get("passed"):
        return Row(label, FAIL, f"device: {'; '.join(dref.get('failures', []))[:200]}")
    inexact = _exact_field(dref)
    if inexact:
        return Row(label, FAIL, f"passes its limits but not exactly: {'; '.join(inexact)}")
    agree = (dref.get("figures", {}).get("agreement") or {}).get("top1_agreement")
    return Row(label, PASS, f"{dref.get('count')} bundle images: hash, raw outputs and tensors identical to the host"
                            + (f"; top-1 agreement with float {agree:.1%}" if agree is not None else ""))


def check_kernel(dinfo: dict[str, Any] | None, label: str) -> Row:
    """The device (no compiler) must run the C kernel the wheel carried."""
    if not dinfo or "resize_detail" not in dinfo:
        return Row(label, NOT_RUN, "no report from the device")
    detail = dinfo["resize_detail"]
    if detail.startswith("C kernel") and detail.rstrip(")").endswith("/site-packages/edgecls/_area.so"):
        return Row(label, PASS, detail)
    return Row(label, FAIL, detail)


def check_sitevenv(report: Path, label: str) -> Row:
    """Pi OS's --system-site-packages venv keeps apt's numpy, so apt's compiled modules import."""
    data = _load(report)
    if data is None:
        log = report.with_suffix(".log")
        last = [line for line in log.read_text().splitlines() if line.strip()][-1:] if log.is_file() else []
        return Row(label, NOT_RUN, "no report" + (f": {last[0].strip()[:160]}" if last else ""))
    ok = data.get("system_site") and data.get("numpy_from_apt") and data.get("apt_module_ok")
    detail = (f"numpy {data.get('numpy')} from {'apt' if data.get('numpy_from_apt') else data.get('numpy_file')}; "
              f"{data.get('apt_module')}")
    return Row(label, PASS if ok else FAIL, detail[:220])


def versions(info: dict[str, Any] | None) -> dict[str, str]:
    if not info:
        return {}
    v = info.get("versions", {})
    runtime = next((f"{n} {v[n]}" for n in ("ai-edge-litert", "tflite-runtime") if v.get(n)), "none")
    return {
        "Python": f"{info.get('python')} ({info.get('machine')}, {info.get('libc')})",
        "runtime": runtime,
        "numpy": str(v.get("numpy")),
        "OpenCV": str(v.get("opencv-python-headless")),
        "edgecls": str(v.get("edgecls")),
        "resize": str(info.get("resize", "-")),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("host", type=Path)
    parser.add_argument("device", type=Path)
    parser.add_argument("--suite", required=True)
    parser.add_argument("--runtime", required=True)
    parser.add_argument("--meta", action="append", default=[], help="KEY=VALUE lines for the header")
    parser.add_argument("--json", type=Path, help="also write the verdict here")
    args = parser.parse_args()
    H, D = args.host, args.device
    hinfo, dinfo = _load(H / "info.json"), _load(D / "info.json")

    rows: list[Row] = []
    if dinfo is None:
        rows.append(Row("device runtime imports", FAIL, "no report from the device"))
    else:
        forbidden, failures = dinfo["forbidden_loaded"], dinfo["import_failures"]
        ok = not forbidden and not failures
        detail = f"{len(dinfo['imported'])} modules; tensorflow/keras not loaded" if ok else (
            f"loaded {', '.join(forbidden)}" if forbidden else f"import failed: {json.dumps(failures)[:200]}")
        rows.append(Row("device runtime imports, no TensorFlow", PASS if ok else FAIL, detail))
    pre_h, pre_d = H / "preprocess.npz", D / "preprocess.npz"
    rows.append(compare_tensors(pre_h, pre_d, "preprocess: frames (npy arrays)", ("arrays/",)))
    rows.append(compare_tensors(pre_h, pre_d, "preprocess: image files (decode+resize)", ("images/",)))
    dec_h, dec_d = H / "preprocess.decoded.json", D / "preprocess.decoded.json"
    rows.append(compare_decoded(dec_h, dec_d, "video-ffv1.avi", "video decode: FFV1 (lossless)"))
    rows.append(compare_tensors(pre_h, pre_d, "preprocess: FFV1 video frames", ("video-ffv1.avi/",)))
    mjpeg = compare_decoded(dec_h, dec_d, "video-mjpg.avi", "video decode: MJPEG (FFmpeg, lossy)")
    if mjpeg.result == FAIL:
        # Upstream of edgecls: OpenCV's bundled FFmpeg decodes MJPEG differently per CPU.
        # Reported, not failed: the FFV1 rows prove edgecls given the same frames.
        mjpeg = Row(mjpeg.check, NOTE, f"{mjpeg.detail}: FFmpeg's decoder, not edgecls (see the FFV1 rows)")
    rows.append(mjpeg)
    rows.append(check_kernel(dinfo, "C kernel loaded from the aarch64 wheel"))
    twin = "preprocess: numpy twin, all of the above"
    if (D / "preprocess-twin.npz").is_file():
        # The device ran the C kernel above; its numpy twin (EDGECLS_NATIVE=0) must agree too.
        rows.append(compare_tensors(pre_h, D / "preprocess-twin.npz", twin, ("arrays/", "images/", "video-ffv1.avi/")))
    else:
        rows.append(Row(twin, NOT_RUN, "the device had no C kernel, so the rows above ran the twin only"))
    backend = (_load(D / "infer.json") or {}).get("backend", "?")
    infer = compare_tensors(H / "infer.npz", D / "infer.npz", "int8 model on the host's tensors", ("",))
    cross_kernels = False
    if (H / "infer-same-runtime.npz").is_file():
        # The device's runtime on x86 too. The CPU question is "same runtime, same bits?":
        # that row gates. tflite-runtime 2.14 runs int8 on TFLite's builtin kernels, which
        # round a few outputs differently from the host's ai-edge-litert (XNNPACK), so the
        # comparison with the host's runtime is a note (field bundles carry both references).
        same_backend = (_load(H / "infer-same-runtime.json") or {}).get("backend", "?")
        same = compare_tensors(H / "infer-same-runtime.npz", D / "infer.npz", "int8 model, same runtime on x86", ("",))
        rows.append(Row(same.check, same.result, f"host {same_backend}: {same.detail}"))
        cross_kernels = infer.result == FAIL
        rows.append(Row("  (vs the host's ai-edge-litert kernels)", NOTE if cross_kernels else PASS,
                        f"device {backend}: {infer.detail}"))
    else:
        rows.append(Row(infer.check, infer.result, f"device {backend}: {infer.detail}"))
    run = compare_run(H / "run.jsonl", D / "run.jsonl", "edgecls run --headless (FFV1 video)")
    if run.result == FAIL and cross_kernels and _same_labels(H / "run.jsonl", D / "run.jsonl"):
        run = Row(run.check, NOTE, f"{run.detail}; every label identical: the score moves with the kernels (see above)")
    rows.append(run)
    rows.append(compare_field(H / "field.json", D / "field.json", "edgecls field check"))
    rows.append(check_sitevenv(D / "sitevenv.json", "Pi OS venv (--system-site-packages) keeps apt's numpy"))
    failed = any(r.result == FAIL for r in rows)
    not_run = [r.check for r in rows if r.result == NOT_RUN]

    hv, dv = versions(hinfo), versions(dinfo)
    meta = dict(m.split("=", 1) for m in args.meta)
    width = max(len(r.check) for r in rows)
    lines = [f"aarch64 check: suite {args.suite}, runtime {args.runtime}"
             + (f", QEMU_CPU={dinfo.get('qemu_cpu')}" if dinfo else "")]
    lines += [f"  {k}: {v}" for k, v in meta.items()]
    lines.append(f"  {'':10} {'host (x86_64)':38} device (emulated aarch64)")
    for key in ("Python", "runtime", "numpy", "OpenCV", "edgecls", "resize"):
        lines.append(f"  {key:10} {hv.get(key, '-'):38} {dv.get(key, '-')}")
    lines.append(f"  {'check':{width}}  result   detail")
    lines += [f"  {r.check:{width}}  {r.result:7}  {r.detail}" for r in rows]
    lines.append("  verdict: " + ("FAIL: the device differs from the host" if failed else
                                  f"INCOMPLETE: {len(not_run)} check(s) did not run: {', '.join(not_run)}" if not_run
                                  else "PASS: device and host agree exactly"))
    print("\n".join(lines))
    if args.json:
        args.json.write_text(json.dumps({"suite": args.suite, "runtime": args.runtime, "meta": meta,
                                         "host": hv, "device": dv, "failed": failed or bool(not_run),
                                         "rows": [asdict(r) for r in rows]}, indent=2) + "\n")
    return 1 if failed or not_run else 0


if __name__ == "__main__":
    raise SystemExit(main())
