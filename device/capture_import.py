"""``edgecls field import CAPTURE_DIR --out REVIEW_DIR``: captures laid out for a person to review.

REVIEW_DIR gets one folder per predicted label, each capture's original image named
``<run>-<frame>_s<score>_<rule>.png``, and ``index.csv`` (one row per capture). A reviewer
moves wrong ones to the right folder (or deletes them) and trains with
``edgecls train DATA --extra-data REVIEW_DIR``: the layout is the class-folder layout
training reads. Nothing but a capture folder (or a ``--save-frames`` folder, the same
format) of a model with the expected labels is accepted, and REVIEW_DIR is staged and
swapped in whole, so a refusal or an interruption leaves nothing half-written.
"""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from edgecls.errors import DataError
from edgecls.frameset import FRAME_NAME, FRAMES_FORMAT, SESSION_FILE
from edgecls.fsutil import StagedDir, atomic_write_text, check_writable_dir

INDEX_FILE = "index.csv"
INDEX_COLUMNS = ("file", "predicted", "score", "rule", "frame", "ts", "run", "capture")
#: Session files larger than this are not capture sessions (hostile or foreign input).
MAX_SESSION_BYTES = 1_000_000
MAX_RECORD_BYTES = 100_000


@dataclass(frozen=True)
class ImportResult:
    out: Path
    count: int
    per_label: dict[str, int]
    incomplete: int


def _not_capture(folder: Path, why: str) -> DataError:
    return DataError(f"{folder} is not a capture folder ({why}): give a folder written by 'edgecls run --capture'")


def read_session(folder: Path) -> dict[str, object]:
    """The capture folder's session.json, or one line saying why it is not one."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"capture folder {folder} does not exist: give a folder written by 'edgecls run --capture'")
    path = folder / SESSION_FILE
    if not path.is_file():
        raise _not_capture(folder, f"no {SESSION_FILE}")
    if path.stat().st_size > MAX_SESSION_BYTES:
        raise _not_capture(folder, f"{SESSION_FILE} is too large")
    try:
        session = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise _not_capture(folder, f"unreadable {SESSION_FILE}: {type(err).__name__}") from err
    if not isinstance(session, dict) or session.get("format") != FRAMES_FORMAT or not isinstance(session.get("labels"), list):
        raise _not_capture(folder, f"{SESSION_FILE} is not an edgecls capture session")
    return session


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.") or "x"


def import_captures(folder: Path, out: Path, *, labels: tuple[str, ...] | None = None, force: bool = False) -> ImportResult:
    """Lay the complete captures of FOLDER out under OUT, one folder per predicted label."""
    folder = Path(folder)
    session = read_session(folder)
    theirs = tuple(str(x) for x in session["labels"])  # type: ignore[attr-defined]
    if labels is not None and theirs != tuple(labels):
        raise DataError(f"captures in {folder} are from a model with labels {', '.join(theirs)}, not "
                        f"{', '.join(labels)}: import them with their own model's labels")
    check_writable_dir(out, force=force, what="review folder")
    stems = sorted({p.name.rsplit(".", 1)[0] for p in folder.iterdir() if FRAME_NAME.match(p.name)})
    rows: list[dict[str, object]] = []
    per_label: dict[str, int] = {}
    incomplete = 0
    with StagedDir(out) as staged:
        for stem in stems:
            rec_path, image = folder / f"{stem}.json", folder / f"{stem}.png"
            if not rec_path.is_file() or not image.is_file() or rec_path.stat().st_size > MAX_RECORD_BYTES:
                incomplete += 1
                continue
            try:
                record = json.loads(rec_path.read_text(encoding="utf-8"))
                label, score = str(record["label"]), float(record["score"])
            except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError):
                incomplete += 1
                continue
            if label not in theirs and label != "unknown":
                raise DataError(f"capture {rec_path} names label {label!r}, which its session does not have: the folder is corrupt")
            rule = str(record.get("rule") or "save-every")
            name = f"{stem}_s{score:.3f}_{_safe(rule)}.png"
            target = staged.path / _safe(label)
            target.mkdir(exist_ok=True)
            shutil.copyfile(image, target / name)
            per_label[label] = per_label.get(label, 0) + 1
            rows.append({"file": f"{_safe(label)}/{name}", "predicted": label, "score": f"{score:.6f}", "rule": rule,
                         "frame": record.get("frame", ""), "ts": record.get("ts", ""), "run": record.get("run", ""),
                         "capture": stem})
        if not rows:
            raise DataError(f"capture folder {folder} holds no complete captures yet: run 'edgecls run --capture {folder}' longer")
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=INDEX_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        atomic_write_text(staged.path / INDEX_FILE, buf.getvalue())
        staged.commit()
    return ImportResult(Path(out), len(rows), per_label, incomplete)
