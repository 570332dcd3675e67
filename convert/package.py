"""``edgecls package RUN_DIR``: the model, its field bundle and a signed manifest in one file.

The bundle is exported here with :func:`.field_export.field_export` (float and host int8
outputs need TensorFlow, hence the host side); the file format, signing and every check
a reader makes live in :mod:`edgecls.package`, shared with the device.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from edgecls.artifact import read_embedded
from edgecls.errors import DataError, ModelError, OutputError
from edgecls.model import SPEC_FILE
from edgecls.package import SUFFIX, PackageInfo, load_private_key, write_package
from edgecls.spec import load_spec

from .export import convert_run, default_output
from .field_export import DEFAULT_COUNT, field_export


@dataclass(frozen=True)
class PackageResult:
    path: Path
    info: PackageInfo
    size_bytes: int
    signed: bool


def default_data(run_dir: Path) -> Path:
    """The run's validation folder (from history.json), the field bundle's default source."""
    import json

    try:
        history = json.loads((Path(run_dir) / "history.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        history = {}
    val = history.get("val_dir") if isinstance(history, dict) else None
    if not val:
        raise DataError(f"{run_dir} records no validation folder: give --data FOLDER (one subfolder per class) for the field bundle")
    return Path(val)


def make_package(run_dir: Path, out: Path, *, quantize: str = "int8", key: Path | None = None,
                 data: Path | None = None, version: str | None = None, count: int = DEFAULT_COUNT,
                 force: bool = False) -> PackageResult:
    """Convert if needed, export the field bundle, write and sign ``out``."""
    run_dir, out = Path(run_dir), Path(out)
    if quantize != "int8":
        raise DataError(f"--quantize {quantize}: packages carry full-integer models (their field bundle "
                        "holds the host's int8 outputs); use --quantize int8")
    if out.suffix != SUFFIX:
        raise OutputError(f"--out {out} must end in {SUFFIX}: devices take only *{SUFFIX} files from their inbox")
    if out.exists() and not force:
        raise OutputError(f"{out} exists: choose another name or pass --force")
    if key is not None:
        load_private_key(key)  # a bad key fails now, not after the export
    spec = load_spec(run_dir / SPEC_FILE)
    data = Path(data) if data is not None else default_data(run_dir)
    model = default_output(run_dir, "int8")
    if not model.exists():
        model = convert_run(run_dir, "int8").path
    embedded, _ = read_embedded(model)
    if embedded is None:
        raise ModelError(f"{model} carries no spec: convert it again with 'edgecls convert {run_dir}'")
    created = datetime.now(timezone.utc)
    tmp = Path(tempfile.mkdtemp(prefix="edgecls-package-"))
    try:
        field_export(run_dir, data, tmp / "bundle", model=model, count=count)
        meta = {"version": version or f"{run_dir.name}-{created:%Y%m%dT%H%M%SZ}",
                "created": created.isoformat(timespec="seconds"), "source_run": str(run_dir),
                "spec": embedded.to_dict(), "train_labels": list(spec.labels)}
        info = write_package(out, model, tmp / "bundle", meta, key)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return PackageResult(out, info, out.stat().st_size, key is not None)
