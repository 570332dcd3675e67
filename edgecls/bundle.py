"""The field bundle: what a device needs to prove it runs the host's model the host's way.

A bundle is a folder (or the same folder packed as one ``.tar`` or ``.zip``)::

    manifest.json      format, version, the model's sha256, labels, spec, tolerances,
                       counts, one entry per item, and the sha256 of every other file
    images/NNNN_<label>.<ext>   the original reference images, byte for byte
    tensors.npy        (N, S, S, 3) uint8: the exact preprocessed model inputs
    float_probs.npy    (N, K) float64: the float Keras model's probabilities
    int8_raw.npy       (N, U): the host int8 model's raw (quantized) outputs
    int8_raw_builtin.npy (N, U): the raw outputs on TFLite's builtin kernels (what
                       tflite-runtime 2.14 runs int8 on; XNNPACK rounds a few differently)

Version 3 dropped version 2's ``int8_dequant.npy`` (the raw outputs dequantized, never
read: the device dequantizes with the model's own parameters); a version 2 bundle is still
read, its extra file hash-checked and ignored.

numpy and json only: the device reads it without TensorFlow. :func:`open_bundle` checks
everything before a figure is computed, so a corrupt or incomplete bundle is one line
naming what is wrong, never a failed check that looks like a model problem.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import math
import os
import shutil
import tarfile
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from edgecls.errors import DataError, OutputError, SpecError
from edgecls.fsutil import StagedDir, atomic_write_bytes, atomic_write_json, npy_bytes
from edgecls.spec import ModelSpec

BUNDLE_FORMAT = "edgecls-field-bundle"
BUNDLE_VERSION = 3
MANIFEST = "manifest.json"
IMAGES_DIR = "images"
#: The arrays of a bundle, by role; every one has N rows, one per item.
ARRAY_FILES = {
    "tensors": "tensors.npy",
    "float_probs": "float_probs.npy",
    "int8_raw": "int8_raw.npy",
    "int8_raw_builtin": "int8_raw_builtin.npy",
}
ARCHIVE_SUFFIXES = (".tar", ".zip")
#: Bounds on what a bundle may make the device unpack and parse (a bundle crosses a network
#: boundary, so it is hostile until proven otherwise). A default export of 200 images is a
#: few MB; these leave two orders of magnitude.
MAX_EXTRACTED_BYTES = 512 << 20
MAX_MEMBERS = 20_000
MAX_MANIFEST_BYTES = 16 << 20
MAX_MANIFEST_DEPTH = 32
MAX_ARRAY_BYTES = 256 << 20


@dataclass(frozen=True)
class Tolerance:
    """One pass limit and why it is that number (both go into the manifest and the report)."""

    value: float
    reason: str


#: The same flatbuffer on the same CPU kernels gives the same integer outputs on x86 and
#: aarch64, so any difference in a raw output step means another model, runtime bug or
#: delegate. "The same kernels" matters: XNNPACK's int8 kernels (ai-edge-litert's default)
#: and TFLite's builtin ones (tflite-runtime 2.14) round a few outputs differently, so the
#: bundle keeps a reference from each and the check uses the one the device ran.
CPU_MAX_RAW_STEPS = Tolerance(0, "the CPU runs the host's integer kernels: outputs must be identical")
#: The Edge TPU requantizes in its own hardware; one output step (1/256 of the range) is
#: its rounding, two or more means the compiled graph is not the host's.
EDGETPU_MAX_RAW_STEPS = Tolerance(1, "the Edge TPU rounds requantization in hardware: at most one output step")
#: The device must agree with the float model as often as the host's int8 model did on the
#: same items, less this. Not an absolute 99 % as in host parity: a quarter of the items are
#: the float model's least certain, where the int8 model itself already flips some.
MAX_AGREEMENT_LOSS = Tolerance(0.01, "the device may agree with float at most 1 pp less often than the host int8 model did")
#: Preprocessing is integer arithmetic end to end (edgecls.preprocess): one value off is a
#: different decoder, resize or colour order on the device.
MAX_PREPROCESS_DIFF = Tolerance(0, "preprocessing is integer arithmetic: the device must reproduce every value")

DEFAULT_TOLERANCES: dict[str, Tolerance] = {
    "cpu_max_raw_steps": CPU_MAX_RAW_STEPS,
    "edgetpu_max_raw_steps": EDGETPU_MAX_RAW_STEPS,
    "max_agreement_loss": MAX_AGREEMENT_LOSS,
    "max_preprocess_diff": MAX_PREPROCESS_DIFF,
}
#: Every bundle also carries this one, derived at export (:func:`agreement_tolerance`).
REQUIRED_TOLERANCES = (*DEFAULT_TOLERANCES, "min_top1_agreement")


def agreement_tolerance(host_agreement: float) -> Tolerance:
    """The bundle's top-1 agreement threshold: the host int8 model's own figure less the allowed loss."""
    return Tolerance(
        round(max(0.0, host_agreement - MAX_AGREEMENT_LOSS.value), 6),
        f"the host int8 model agreed with float on {host_agreement:.2%} of these items "
        f"(a quarter at the decision boundary); the device may lose at most {MAX_AGREEMENT_LOSS.value:.0%}",
    )


@dataclass(frozen=True)
class BundleItem:
    """file: path inside the bundle (images/...). label/class_index: the true class.
    source: where the image came from on the host. selection: "boundary" (among the float
    model's least certain) or "stratified" (random within its class). margin: float top-1
    minus top-2 probability."""

    file: str
    label: str
    class_index: int
    source: str
    selection: str
    margin: float


@dataclass(frozen=True)
class FieldBundle:
    """A validated bundle. ``root`` is its folder (a temp folder for an archive, valid only
    inside :func:`open_bundle`)."""

    root: Path
    source: Path
    model_name: str
    model_sha256: str
    edgetpu_sha256: str | None
    spec: ModelSpec
    tolerances: dict[str, Tolerance]
    items: tuple[BundleItem, ...]
    tensors: np.ndarray
    float_probs: np.ndarray
    int8_raw: np.ndarray
    int8_raw_builtin: np.ndarray
    host: dict[str, Any]

    @property
    def labels(self) -> tuple[str, ...]:
        return self.spec.labels

    def image_path(self, item: BundleItem) -> Path:
        return self.root / item.file


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_bundle(
    out: Path, *, model_name: str, model_sha256: str, edgetpu_sha256: str | None, spec: ModelSpec,
    items: list[BundleItem], images: list[bytes], arrays: dict[str, np.ndarray], host: dict[str, Any],
    tolerances: dict[str, Tolerance],
) -> Path:
    """Write a complete bundle at ``out`` (a folder, or an archive if it ends in .tar/.zip), atomically."""
    missing = [name for name in REQUIRED_TOLERANCES if name not in tolerances]
    if missing:
        raise ValueError(f"tolerances lack {missing}")
    if set(arrays) != set(ARRAY_FILES):
        raise ValueError(f"arrays must be exactly {sorted(ARRAY_FILES)}")
    out = Path(out)
    archive = out.suffix.lower() in ARCHIVE_SUFFIXES
    staged = StagedDir(out.with_name(out.name + ".d") if archive else out)
    with staged:
        hashes: dict[str, str] = {}
        for item, data in zip(items, images, strict=True):
            (staged.path / item.file).parent.mkdir(parents=True, exist_ok=True)
            (staged.path / item.file).write_bytes(data)
            hashes[item.file] = hashlib.sha256(data).hexdigest()
        for role, name in ARRAY_FILES.items():
            data = npy_bytes(arrays[role])
            (staged.path / name).write_bytes(data)
            hashes[name] = hashlib.sha256(data).hexdigest()
        per_class = {label: sum(1 for it in items if it.class_index == i) for i, label in enumerate(spec.labels)}
        atomic_write_json(staged.path / MANIFEST, {
            "format": BUNDLE_FORMAT, "version": BUNDLE_VERSION,
            "model": {"name": model_name, "sha256": model_sha256, "edgetpu_sha256": edgetpu_sha256},
            "labels": list(spec.labels), "spec": spec.to_dict(),
            "tolerances": {k: {"value": t.value, "reason": t.reason} for k, t in tolerances.items()},
            "counts": {"items": len(items), "per_class": per_class,
                       "boundary": sum(1 for it in items if it.selection == "boundary")},
            "host": host,
            "items": [vars(it) for it in items],
            "files": hashes,
        })
        if not archive:
            return staged.commit()
        try:
            atomic_write_bytes(out, _pack(staged.path, out.suffix.lower()))
        finally:
            staged.discard()
    return out


def _pack(folder: Path, suffix: str) -> bytes:
    buf = io.BytesIO()
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    if suffix == ".zip":
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
            for p in files:
                zf.write(p, p.relative_to(folder).as_posix())
    else:
        with tarfile.open(fileobj=buf, mode="w") as tf:
            for p in files:
                tf.add(p, p.relative_to(folder).as_posix(), recursive=False)
    return buf.getvalue()


def _safe_member(name: str) -> bool:
    path = PurePosixPath(name)
    return bool(name) and not path.is_absolute() and ".." not in path.parts and "\\" not in name


def _archive_members(archive: Path) -> list[tuple[str, int, bool]]:
    """(name, size, is_dir) of every member; links and special files are refused."""
    if archive.suffix.lower() == ".zip":
        with zipfile.ZipFile(archive) as zf:
            return [(i.filename.rstrip("/"), i.file_size, i.is_dir()) for i in zf.infolist()]
    with tarfile.open(archive) as tf:
        members = tf.getmembers()
    bad = [m.name for m in members if not (m.isfile() or m.isdir())]
    if bad:
        raise DataError(f"bundle {archive} has links or special files ({bad[0]}): it was not written by edgecls")
    return [(m.name.rstrip("/"), m.size, m.isdir()) for m in members]


def _read_member(archive: Path, name: str) -> bytes:
    if archive.suffix.lower() == ".zip":
        with zipfile.ZipFile(archive) as zf, zf.open(name) as fh:
            return fh.read(MAX_MANIFEST_BYTES + 1)
    with tarfile.open(archive) as tf:
        member = tf.extractfile(name)
        return member.read(MAX_MANIFEST_BYTES + 1) if member is not None else b""


def _check_archive(archive: Path) -> None:
    """Before anything is unpacked: bounded size and count, safe paths, and only the files the
    manifest lists (plus the manifest and their folders)."""
    members = _archive_members(archive)
    if len(members) > MAX_MEMBERS:
        raise DataError(f"bundle {archive} has {len(members):,} members, over {MAX_MEMBERS:,}: it was not written by edgecls")
    bad = [n for n, _, _ in members if not _safe_member(n)]
    if bad:
        raise DataError(f"bundle {archive} has unsafe member paths ({bad[0]}): it was not written by edgecls")
    total = sum(size for _, size, _ in members)
    if total > MAX_EXTRACTED_BYTES:
        raise DataError(f"bundle {archive} would unpack to {total:,} bytes, over the limit of {MAX_EXTRACTED_BYTES:,}: "
                        "it was not written by edgecls")
    manifests = [n for n, _, d in members if not d and PurePosixPath(n).name == MANIFEST and len(PurePosixPath(n).parts) <= 2]
    if len(manifests) != 1:
        raise DataError(f"bundle {archive} is incomplete: {MANIFEST} is missing; export it again with 'edgecls field export'")
    prefix = str(PurePosixPath(manifests[0]).parent)
    prefix = "" if prefix == "." else prefix + "/"
    manifest = _parse_manifest(_read_member(archive, manifests[0]), archive)
    files = manifest.get("files")
    listed = set(files) if isinstance(files, dict) else set()
    allowed = {prefix + name for name in listed} | {manifests[0]}
    folders = {str(p) for n in allowed for p in PurePosixPath(n).parents if str(p) != "."}
    extra = [n for n, _, d in members if n not in allowed and not (d and n in folders)]
    if extra:
        raise DataError(f"bundle {archive} holds files its manifest does not list ({extra[0]}): "
                        "it was changed after export; export it again")


def _extract(archive: Path, into: Path) -> None:
    """Unpack a .tar or .zip after :func:`_check_archive`, refusing links and paths that leave the folder."""
    try:
        _check_archive(archive)
        if archive.suffix.lower() == ".zip":
            with zipfile.ZipFile(archive) as zf:
                zf.extractall(into)
        else:
            with tarfile.open(archive) as tf:
                # links and escaping paths are refused above; Python >= 3.11.4 also filters itself
                extra: dict[str, Any] = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
                tf.extractall(into, members=tf.getmembers(), **extra)
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError, KeyError) as err:
        raise DataError(
            f"bundle {archive} is not a readable {archive.suffix} archive ({type(err).__name__}: {err}): "
            "it is truncated or corrupt; copy it again"
        ) from err


@contextlib.contextmanager
def open_bundle(path: Path) -> Iterator[FieldBundle]:
    """A validated bundle from a folder or archive; raises DataError naming what is wrong."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"bundle {path} does not exist: make one on the host with 'edgecls field export'")
    if path.is_dir():
        yield load_bundle_dir(path, path)
        return
    if path.suffix.lower() not in ARCHIVE_SUFFIXES:
        raise DataError(f"bundle {path} is neither a folder nor a .tar/.zip archive: give what 'edgecls field export' wrote")
    tmp = Path(tempfile.mkdtemp(prefix="edgecls-bundle-"))
    try:
        _extract(path, tmp)
        entries = [p for p in tmp.iterdir() if not p.name.startswith(".")]
        root = entries[0] if len(entries) == 1 and entries[0].is_dir() else tmp
        yield load_bundle_dir(root, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _get(manifest: dict[str, Any], key: str, kind: type | tuple[type, ...], where: Path) -> Any:
    value: Any = manifest
    for part in key.split("."):
        if not isinstance(value, dict) or part not in value:
            raise DataError(f"bundle {where} is incomplete: {MANIFEST} has no '{key}'; export it again")
        value = value[part]
    if not isinstance(value, kind):
        raise DataError(f"bundle {where} is corrupt: {MANIFEST} '{key}' is a {type(value).__name__}; export it again")
    return value


def _depth(value: Any) -> int:
    """Nesting depth of parsed JSON, without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, d = stack.pop()
        deepest = max(deepest, d)
        if isinstance(item, dict):
            stack.extend((v, d + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, d + 1) for v in item)
    return deepest


def _parse_manifest(data: bytes, where: Path) -> dict[str, Any]:
    if len(data) > MAX_MANIFEST_BYTES:
        raise DataError(f"bundle {where} is corrupt: {MANIFEST} is over {MAX_MANIFEST_BYTES:,} bytes; export it again")
    try:
        manifest = json.loads(data.decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DataError(f"bundle {where} is corrupt: {MANIFEST} is not valid JSON ({err}); export it again") from err
    except RecursionError as err:
        raise DataError(f"bundle {where} is corrupt: {MANIFEST} is nested too deeply; export it again") from err
    if _depth(manifest) > MAX_MANIFEST_DEPTH:
        raise DataError(f"bundle {where} is corrupt: {MANIFEST} is nested deeper than {MAX_MANIFEST_DEPTH}; export it again")
    if not isinstance(manifest, dict) or manifest.get("format") != BUNDLE_FORMAT:
        raise DataError(f"{where} is not an edgecls field bundle ({MANIFEST} lacks format {BUNDLE_FORMAT!r})")
    return manifest


def _read_manifest(root: Path, where: Path) -> dict[str, Any]:
    manifest_path = root / MANIFEST
    if not manifest_path.is_file():
        raise DataError(f"bundle {where} is incomplete: {MANIFEST} is missing; export it again with 'edgecls field export'")
    with open(manifest_path, "rb") as fh:
        manifest = _parse_manifest(fh.read(MAX_MANIFEST_BYTES + 1), where)
    version = _get(manifest, "version", int, where)
    if version > BUNDLE_VERSION:
        raise DataError(f"bundle {where} has version {version}; this edgecls reads up to {BUNDLE_VERSION}: upgrade edgecls")
    return manifest


def _check_files(root: Path, where: Path, files: dict[str, Any]) -> None:
    base = root.resolve()
    for name in files:
        inside = (root / name).resolve()
        if not _safe_member(str(name)) or (inside != base and base not in inside.parents):
            raise DataError(f"bundle {where} is corrupt: {MANIFEST} names {name!r}, outside the bundle; "
                            "it was not written by edgecls")
    missing = [name for name in files if not (root / name).is_file()]
    if missing:
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        raise DataError(
            f"bundle {where} is incomplete: {len(missing)} of {len(files)} files missing "
            f"({', '.join(missing[:3])}{more}); copy the whole bundle again"
        )
    for name, digest in files.items():
        if file_sha256(root / name) != digest:
            raise DataError(f"bundle {where} is corrupt: {name} does not match its recorded sha256; copy the bundle again")


def _load_array(root: Path, where: Path, name: str) -> np.ndarray:
    """np.load after reading the header: a plain dtype, and a shape that matches the file's size
    (a 100-byte file can declare a terabyte), within :data:`MAX_ARRAY_BYTES`."""
    path = root / name
    try:
        with open(path, "rb") as fh:
            version = np.lib.format.read_magic(fh)
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(fh)
            elif version == (2, 0):
                shape, _, dtype = np.lib.format.read_array_header_2_0(fh)
            else:
                raise ValueError(f"unsupported .npy version {version}")
            offset = fh.tell()
        if dtype.hasobject or not dtype.isbuiltin or len(shape) > 8:
            raise ValueError(f"dtype {dtype}, shape {shape} is not plain numbers")
        nbytes = math.prod(shape) * dtype.itemsize if all(d >= 0 for d in shape) else -1
        size = path.stat().st_size - offset
        if nbytes < 0 or nbytes > MAX_ARRAY_BYTES or nbytes != size:
            raise ValueError(f"its header declares shape {shape} ({nbytes:,} bytes) but it holds {size:,}")
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError, OverflowError) as err:
        raise DataError(f"bundle {where} is corrupt: {name} is not a readable .npy ({err}); export it again") from err


def load_bundle_dir(root: Path, where: Path) -> FieldBundle:
    """Validate and load an unpacked bundle; ``where`` names it in messages."""
    manifest = _read_manifest(root, where)
    files = _get(manifest, "files", dict, where)
    for name in ARRAY_FILES.values():
        if name not in files:
            raise DataError(f"bundle {where} is incomplete: {MANIFEST} does not list {name}; export it again")
    raw_items = _get(manifest, "items", list, where)
    try:
        items = tuple(BundleItem(str(i["file"]), str(i["label"]), int(i["class_index"]), str(i["source"]),
                                 str(i["selection"]), float(i["margin"])) for i in raw_items)
    except (KeyError, TypeError, ValueError) as err:
        raise DataError(f"bundle {where} is corrupt: an item in {MANIFEST} lacks {err}; export it again") from err
    unlisted = [it.file for it in items if it.file not in files]
    if unlisted or any(not _safe_member(it.file) for it in items):
        raise DataError(f"bundle {where} is corrupt: item {(unlisted or [items[0].file])[0]} has no recorded sha256")
    _check_files(root, where, files)
    try:
        spec = ModelSpec.from_dict(_get(manifest, "spec", dict, where), f"bundle {where} spec")
    except SpecError as err:
        raise DataError(str(err)) from err
    if list(spec.labels) != _get(manifest, "labels", list, where):
        raise DataError(f"bundle {where} is corrupt: its labels and its spec's labels differ; export it again")
    tolerances = {}
    given = _get(manifest, "tolerances", dict, where)
    for name in REQUIRED_TOLERANCES:
        entry = given.get(name)
        if not isinstance(entry, dict) or not isinstance(entry.get("value"), int | float):
            raise DataError(f"bundle {where} is incomplete: tolerance '{name}' is missing; export it again")
        tolerances[name] = Tolerance(entry["value"], str(entry.get("reason", "")))
    arrays = {role: _load_array(root, where, name) for role, name in ARRAY_FILES.items()}
    _check_shapes(arrays, spec, items, where)
    sha = _get(manifest, "model.sha256", str, where)
    tpu = manifest["model"].get("edgetpu_sha256")
    return FieldBundle(
        root=root, source=Path(where), model_name=_get(manifest, "model.name", str, where), model_sha256=sha,
        edgetpu_sha256=tpu if isinstance(tpu, str) else None, spec=spec, tolerances=tolerances, items=items,
        tensors=arrays["tensors"], float_probs=arrays["float_probs"], int8_raw=arrays["int8_raw"],
        int8_raw_builtin=arrays["int8_raw_builtin"],
        host=dict(manifest.get("host") or {}),
    )


def _check_shapes(arrays: dict[str, np.ndarray], spec: ModelSpec, items: tuple[BundleItem, ...], where: Path) -> None:
    n, s, k = len(items), spec.input_size, len(spec.labels)
    t = arrays["tensors"]
    if t.dtype != np.uint8 or t.shape != (n, s, s, 3):
        raise DataError(f"bundle {where} is corrupt: tensors.npy is {t.dtype} {t.shape}, expected uint8 {(n, s, s, 3)}")
    if arrays["float_probs"].shape != (n, k):
        raise DataError(f"bundle {where} is corrupt: float_probs.npy has shape {arrays['float_probs'].shape}, expected {(n, k)}")
    raw, builtin = arrays["int8_raw"], arrays["int8_raw_builtin"]
    if raw.ndim != 2 or raw.shape[0] != n or builtin.shape != raw.shape:
        raise DataError(f"bundle {where} is corrupt: int8 outputs have shapes {raw.shape} and {builtin.shape}, expected {n} rows")
    if not items or any(not 0 <= it.class_index < k or spec.labels[it.class_index] != it.label for it in items):
        raise DataError(f"bundle {where} is corrupt: it has no items, or an item's class is not one of its labels")


def check_bundle_target(out: Path, *, force: bool) -> None:
    """Refuse an existing bundle path unless ``force``; archives must end in .tar or .zip."""
    out = Path(out)
    if out.exists() and not force:
        raise OutputError(f"bundle {out} exists: choose another path or pass --force")
    if out.exists() and out.is_dir() != (out.suffix.lower() not in ARCHIVE_SUFFIXES):
        raise OutputError(f"bundle {out} exists and is a {'folder' if out.is_dir() else 'file'}: choose another path")
    parent = out.resolve().parent
    if parent.exists() and not os.access(parent, os.W_OK):
        raise OutputError(f"cannot write into {parent}: choose a writable path for the bundle")
