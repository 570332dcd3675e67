"""The model store on the device: verified packages by hash, one atomic pointer, a history.

    STORE/
      state.json       the pointer: current, previous, older, and the probation record
      history.jsonl    one line per accept, refusal, rollback, recovery (append + fsync)
      models/<sha256>/ an unpacked, verified package (manifest.json, manifest.sig,
                       model.tflite, bundle/), named by its model's sha256
      tmp/             packages being unpacked (removed at every start)

Every change of state is one ``state.json`` written to a temp file, fsynced and renamed
over the old one (then the folder is fsynced), so ``kill -9`` at any moment leaves
either the old state or the new one. A model folder enters ``models/`` by a rename
after it was unpacked and verified, so a folder there is complete. A swap writes
``probation: {candidate, previous, started}`` in the same write that makes the
candidate current; :meth:`ModelStore.recover`, run at every start, treats a probation
that was never confirmed as failed and falls back to the previous model. At start the
current model's files are checked against their signed hashes again; a damaged one is
skipped for the previous.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from edgecls.errors import ModelError, OutputError
from edgecls.fsutil import atomic_write_json
from edgecls.package import MODEL, PackageInfo, check_unpacked, open_package, read_unpacked

log = logging.getLogger("edgecls.device")

STATE = "state.json"
HISTORY = "history.jsonl"
MODELS = "models"
TMP = "tmp"
LOCK = "lock"
#: Models kept besides the current and the previous one (each a few MB).
DEFAULT_KEEP_OLDER = 2


@dataclass(frozen=True)
class Probation:
    candidate: str
    previous: str | None
    started: float
    window_s: float


@dataclass(frozen=True)
class StoreState:
    current: str | None = None
    previous: str | None = None
    older: tuple[str, ...] = ()
    probation: Probation | None = None

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["older"] = list(self.older)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StoreState:
        p = data.get("probation")
        return cls(data.get("current"), data.get("previous"), tuple(data.get("older") or ()),
                   Probation(**p) if isinstance(p, dict) else None)


@dataclass(frozen=True)
class StoredModel:
    """A model in the store: its folder, sha256 and package version."""

    sha256: str
    version: str
    folder: Path
    manifest: dict[str, Any] = field(repr=False, default_factory=dict)

    @property
    def model(self) -> Path:
        return self.folder / MODEL

    @property
    def bundle(self) -> Path:
        return self.folder / str(self.manifest.get("bundle", "bundle"))

    @property
    def short(self) -> str:
        return f"{self.version} ({self.sha256[:12]})"


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class ModelStore:
    def __init__(self, root: Path, keep_older: int = DEFAULT_KEEP_OLDER) -> None:
        self.root = Path(root)
        self.keep_older = keep_older
        #: Called with every history record once it is on disk (the gate publishes them over MQTT).
        self.on_record: Callable[[dict[str, Any]], None] | None = None
        try:
            (self.root / MODELS).mkdir(parents=True, exist_ok=True)
            (self.root / TMP).mkdir(exist_ok=True)
        except OSError as err:
            raise OutputError(f"cannot use --store {root}: {err.strerror}; give a writable folder") from err
        if not os.access(self.root, os.W_OK | os.X_OK):
            raise OutputError(f"cannot write into --store {root}: give a folder this user can write")

    def hold(self) -> int | None:
        """Lock the store for a live process (released when the fd closes or the process
        dies); None if another process holds it. ``edgecls rollback`` uses this to tell a
        live device (ask it) from a stopped one (edit the pointer itself)."""
        import fcntl

        fd = os.open(self.root / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return None
        return fd

    # -- reading

    def state(self) -> StoreState:
        path = self.root / STATE
        if not path.exists():
            return StoreState()
        try:
            return StoreState.from_dict(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError) as err:
            raise ModelError(f"store {self.root}: {STATE} is unreadable ({err}): restore it or 'edgecls rollback'") from err

    def get(self, sha: str) -> StoredModel:
        folder = self.root / MODELS / sha
        manifest = read_unpacked(folder)
        return StoredModel(sha, str(manifest.get("version", "?")), folder, manifest)

    def current(self) -> StoredModel:
        state = self.state()
        if state.current is None:
            raise ModelError(f"store {self.root} holds no model yet: install one with "
                             f"'edgecls store install NAME.edgecls --store {self.root} --trust KEY.pub'")
        return self.get(state.current)

    def history(self) -> list[dict[str, Any]]:
        path = self.root / HISTORY
        if not path.exists():
            return []
        out = []
        for line in path.read_text(encoding="utf-8").splitlines():
            with contextlib.suppress(ValueError):
                out.append(json.loads(line))
        return out

    # -- writing

    def _write_state(self, state: StoreState) -> None:
        try:
            atomic_write_json(self.root / STATE, state.to_dict())
        except OSError as err:
            raise OutputError(f"cannot write the store's pointer {self.root / STATE}: {err.strerror}; free space on the device") from err
        _fsync_dir(self.root)

    def log(self, event: str, **fields: Any) -> dict[str, Any]:
        """Append one history record (fsynced: a refusal or rollback is never lost)."""
        record = {"ts": datetime.now(timezone.utc).isoformat(timespec="milliseconds"), "event": event, **fields}
        try:
            with open(self.root / HISTORY, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(record, separators=(",", ":")) + "\n")
                fh.flush()
                os.fsync(fh.fileno())
        except OSError as err:
            log.warning("cannot append to %s: %s", self.root / HISTORY, err.strerror)
        if self.on_record is not None:
            self.on_record(record)
        return record

    def unpack(self, package: Path, trusted: dict[str, Any]) -> tuple[PackageInfo, Path]:
        """Verify and unpack into a temp folder of the store (same filesystem: the later rename is atomic)."""
        try:
            tmp = Path(tempfile.mkdtemp(prefix="unpack-", dir=self.root / TMP))
        except OSError as err:
            raise OutputError(f"cannot unpack into --store {self.root}: {err.strerror}; free space on the device") from err
        try:
            return open_package(package, trusted, tmp), tmp
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    def discard(self, tmp: Path) -> None:
        shutil.rmtree(tmp, ignore_errors=True)

    def commit_folder(self, info: PackageInfo, tmp: Path) -> StoredModel:
        """Move a verified unpacked package into models/<sha256> (already there: keep that one)."""
        target = self.root / MODELS / info.model_sha256
        state = self.state()
        if target.exists() and info.model_sha256 not in (state.current, state.previous, *state.older):
            shutil.rmtree(target)  # left by a refused or interrupted package, perhaps with another bundle
        if target.exists():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            os.replace(tmp, target)
            _fsync_dir(target.parent)
        return self.get(info.model_sha256)

    def make_current(self, sha: str, *, probation_s: float | None) -> StoreState:
        """One atomic write: ``sha`` current, the old current previous, the probation record."""
        old = self.state()
        chain = [s for s in (old.current, old.previous, *old.older) if s and s != sha]
        new = StoreState(sha, chain[0] if chain else None, tuple(chain[1:1 + self.keep_older]),
                         Probation(sha, old.current, time.time(), probation_s)
                         if probation_s is not None and old.current else None)
        self._write_state(new)
        return new

    def confirm(self) -> None:
        state = self.state()
        if state.probation is not None:
            self._write_state(replace(state, probation=None))
        self.prune()

    def rollback(self, reason: str, event: str = "rollback") -> StoredModel:
        """Make the previous model current (the failed current drops out of the chain)."""
        state = self.state()
        if state.previous is None:
            raise ModelError(f"store {self.root} has no previous model to roll back to")
        failed = state.current
        new = StoreState(state.previous, state.older[0] if state.older else None, state.older[1:], None)
        self._write_state(new)
        self.log(event, model=failed, to=new.current, reason=reason)
        log.warning("rolled back from %s to %s: %s", (failed or "?")[:12], (new.current or "?")[:12], reason)
        self.prune()
        return self.get(new.current)  # type: ignore[arg-type]

    def prune(self) -> None:
        state = self.state()
        keep = {s for s in (state.current, state.previous, *state.older) if s}
        for folder in (self.root / MODELS).iterdir():
            if folder.name not in keep:
                shutil.rmtree(folder, ignore_errors=True)

    def recover(self, trusted: dict[str, Any] | None = None) -> StoredModel:
        """At start: drop half-unpacked packages, end an unconfirmed probation by rolling
        back, and return a current model whose files match their signed hashes."""
        for leftover in (self.root / TMP).iterdir():
            shutil.rmtree(leftover, ignore_errors=True)
        state = self.state()
        if state.probation is not None:
            self.rollback(f"restarted during the probation of {state.probation.candidate[:12]} "
                          "(a crash, a kill or a power cut): its previous model is back", "recovered")
        for _ in range(2 + self.keep_older):
            state = self.state()
            if state.current is None:
                break
            problem = check_unpacked(self.root / MODELS / state.current, trusted)
            if problem is None:
                self.prune()  # a package killed between its unpacking and its swap
                return self.get(state.current)
            if state.previous is None:
                raise ModelError(f"store {self.root}: the current model {state.current[:12]} is damaged ({problem}) "
                                 "and there is no previous one: install a package again")
            self.rollback(f"the current model {state.current[:12]} is damaged ({problem})", "recovered")
        return self.current()

    def install(self, package: Path, trusted: dict[str, Any]) -> StoredModel:
        """Verify, unpack and make current without a running model (first provisioning)."""
        info, tmp = self.unpack(package, trusted)
        stored = self.commit_folder(info, tmp)
        self.make_current(stored.sha256, probation_s=None)
        self.log("installed", model=stored.sha256, version=stored.version, package=str(package))
        self.prune()
        return stored

