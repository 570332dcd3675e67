"""The update gate: a package becomes the running model only if this device proves it good.

    UpdateManager.submit(path)      verify -> load -> field check -> swap -> probation
    UpdateManager.rollback()        by hand: the previous model, between two frames
    inbox.InboxWatcher              feeds submit() with packages dropped into --inbox

In order, each step refusing with a reason that names its figure: (1) the signature
against the trusted keys and every member's sha256 (:mod:`edgecls.package`); (2) the
candidate loaded in an interpreter of its own, its labels and input size against its
manifest; (3) the package's field check (:func:`.field.field_check`) on this device, on
another thread while the current model keeps classifying; (4) the swap between two
frames (:class:`.slot.ClassifierSlot`), recorded in the store with a probation record in
the same atomic write. During probation the slot falls back on the first error, and the
window ends with the frame rate compared to the previous model's. A refusal leaves the
running model untouched and is logged in the store's history and via ``publish`` (the
fleet helper's MQTT stats/events hook: ``publish(record)`` with the history record).

Test hooks (environment, read at each step): ``EDGECLS_TEST_PAUSE_AT=verify|check|swap|
probation`` prints ``test pause at STEP`` and sleeps there so a test can kill -9 the
process at that moment; ``EDGECLS_TEST_BREAK=VERSION:crash|raise`` makes that version's
model kill the process with SIGSEGV (or raise) on its first frame, as a model that
crashes its interpreter would.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from edgecls.errors import EdgeclsError, ModelError, OutputError

from .options import RunOptions
from .results import ModelRef
from .slot import ClassifierSlot, Loaded
from .store import ModelStore, StoredModel

log = logging.getLogger("edgecls.device")

PAUSE_ENV = "EDGECLS_TEST_PAUSE_AT"
BREAK_ENV = "EDGECLS_TEST_BREAK"
#: The candidate fails probation if its frame rate falls under this share of the previous
#: model's (measured over the same source): a model twice as slow drops half the frames.
MIN_FPS_RATIO = 0.5
#: Probation window unless --probation says otherwise.
DEFAULT_PROBATION_S = 30.0


@dataclass(frozen=True)
class UpdateOptions:
    probation_s: float = DEFAULT_PROBATION_S
    min_fps_ratio: float = MIN_FPS_RATIO


@dataclass(frozen=True)
class Verdict:
    """What became of one package: accepted (now on probation) or refused, and why."""

    package: str
    accepted: bool
    reason: str
    version: str | None = None
    sha256: str | None = None
    verify_s: float = 0.0
    check_s: float = 0.0
    check_cpu_s: float = 0.0


def _pause(step: str) -> None:
    if os.environ.get(PAUSE_ENV) == step:
        sys.stderr.write(f"test pause at {step}\n")
        sys.stderr.flush()
        while True:
            time.sleep(60)


def _maybe_break(loaded: Loaded, version: str) -> None:
    spec = os.environ.get(BREAK_ENV, "")
    want, _, how = spec.partition(":")
    if not spec or want != version:
        return
    backend = loaded.backend

    def broken(tensor: Any) -> Any:
        if how == "crash":
            os.kill(os.getpid(), signal.SIGSEGV)
        raise RuntimeError(f"test break of model {version}")

    backend.invoke = broken  # type: ignore[method-assign]


def ref_of(stored: StoredModel) -> ModelRef:
    return ModelRef(stored.sha256, stored.version)


def plain_ref(model: Path) -> ModelRef:
    """A bare ``--model`` file: named by its sha256 alone."""
    from edgecls.bundle import file_sha256

    return ModelRef(file_sha256(model))


def open_stored(options: RunOptions, stored: StoredModel) -> Loaded:
    """The stored model opened as the live loop opens one (its own interpreter)."""
    from .loop import open_classifier

    info, backend, classifier = open_classifier(replace(options, model=stored.model, labels=None))
    return Loaded(info, backend, classifier, ref_of(stored))


def check_stored(options: RunOptions, stored: StoredModel) -> tuple[Loaded, float, float]:
    """Steps 2 and 3: load the candidate, compare it with its manifest, run its field check.
    Returns it opened, with the check's wall and CPU (this thread's) seconds."""
    from .field import field_check

    loaded = open_stored(options, stored)
    try:
        manifest = stored.manifest
        labels = tuple(str(x) for x in manifest.get("labels", ()))
        if labels != loaded.info.labels:
            raise ModelError(f"labels: the manifest says ({', '.join(labels)}), the model carries "
                             f"({', '.join(loaded.info.labels)}) from {loaded.info.labels_from}")
        size = int(dict(manifest.get("input") or {}).get("size", -1))
        takes = loaded.backend.input.shape[1]
        if size != takes:
            raise ModelError(f"input size: the manifest says {size}x{size}, the model takes {takes}x{takes}")
        _pause("check")
        wall, cpu = time.monotonic(), time.thread_time()
        report = field_check(stored.model, stored.bundle, edgetpu=options.edgetpu, device=options.device,
                             num_threads=options.num_threads)
        wall, cpu = time.monotonic() - wall, time.thread_time() - cpu
        if not report.passed:
            raise ModelError("field check failed: " + "; ".join(report.failures()))
    except BaseException:
        loaded.backend.close()
        raise
    return loaded, wall, cpu


class UpdateManager:
    """One update at a time. ``submit`` and ``rollback`` are what an MQTT handler calls
    (``cmd/update``: ``manager.submit(path)``; ``cmd/rollback``: ``manager.rollback()``)."""

    def __init__(self, store: ModelStore, trusted: dict[str, Any], slot: ClassifierSlot, options: RunOptions,
                 update: UpdateOptions | None = None, publish: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.store, self.trusted, self.slot, self.options = store, trusted, slot, options
        self.update = update or UpdateOptions()
        self.publish = publish
        self._busy = threading.Lock()
        self._end_probation = threading.Event()
        self._probation: threading.Thread | None = None
        self.verdicts: list[Verdict] = []
        slot.on_error = self._on_slot_error
        store.on_record = self._published  # every record, the store's rollbacks included

    def _record(self, event: str, **fields: Any) -> None:
        self.store.log(event, **fields)

    def _published(self, record: dict[str, Any]) -> None:
        if self.publish is not None:
            try:
                self.publish(record)
            except Exception as err:  # publishing must never stop an update or the loop
                log.warning("cannot publish %s: %s", record.get("event"), err)

    def _refuse(self, package: Path, reason: str, *, verify_s: float = 0.0, check_s: float = 0.0) -> Verdict:
        log.error("refused %s: %s; still running %s", package.name, reason, self.slot.current.ref.short
                  if self.slot.current.ref else self.slot.current.info.path.name)
        self._record("refused", package=package.name, reason=reason)
        verdict = Verdict(package.name, False, reason, verify_s=verify_s, check_s=check_s)
        self.verdicts.append(verdict)
        return verdict

    def submit(self, package: Path) -> Verdict:
        """Run the gate on one package file (blocking; call it on a thread of its own)."""
        package = Path(package)
        if not self._busy.acquire(blocking=False):
            return self._refuse(package, "another update is in progress")
        try:
            if self.slot.on_probation:
                return self._refuse(package, "the previous update is still on probation: send it after its window")
            t0 = time.monotonic()
            try:
                info, tmp = self.store.unpack(package, self.trusted)
            except EdgeclsError as err:
                return self._refuse(package, str(err))
            _pause("verify")
            verify_s = time.monotonic() - t0
            current = self.store.state().current
            if info.model_sha256 == current:
                self.store.discard(tmp)
                return self._refuse(package, f"model {info.short} is already running", verify_s=verify_s)
            try:
                stored = self.store.commit_folder(info, tmp)
            except OSError as err:
                self.store.discard(tmp)
                return self._refuse(package, f"cannot store it: {err.strerror}; free space on the device")
            try:
                loaded, check_s, check_cpu = check_stored(self.options, stored)
            except Exception as err:  # a model that breaks the interpreter is refused, not fatal
                self.store.prune()
                reason = str(err) if isinstance(err, EdgeclsError) else f"the model cannot run here ({type(err).__name__}: {err})"
                return self._refuse(package, reason, verify_s=verify_s)
            _maybe_break(loaded, stored.version)
            _pause("swap")
            try:
                self.store.make_current(stored.sha256, probation_s=self.update.probation_s)
            except OutputError as err:
                loaded.backend.close()
                return self._refuse(package, str(err), verify_s=verify_s, check_s=check_s)
            before = time.monotonic()
            _, fps_before = self.slot.rate_since(before - max(self.update.probation_s, 5.0))
            self.slot.swap(loaded.info, loaded.backend, loaded.classifier, loaded.ref, probation=True)
            self._record("swapped", model=stored.sha256, version=stored.version, package=package.name,
                         verify_s=round(verify_s, 3), check_s=round(check_s, 3), check_cpu_s=round(check_cpu, 3))
            log.info("now running %s (probation %.0f s); verify %.2f s, field check %.2f s (%.2f CPU s)",
                     stored.short, self.update.probation_s, verify_s, check_s, check_cpu)
            self._start_probation(stored, before, fps_before)
            verdict = Verdict(package.name, True, "accepted: on probation", stored.version, stored.sha256,
                              verify_s, check_s, check_cpu)
            self.verdicts.append(verdict)
            return verdict
        finally:
            self._busy.release()

    # -- probation

    def _start_probation(self, stored: StoredModel, swapped: float, fps_before: float) -> None:
        self._end_probation.clear()
        self._probation = threading.Thread(target=self._watch, args=(stored, swapped, fps_before),
                                           name="edgecls-probation", daemon=True)
        self._probation.start()

    def _watch(self, stored: StoredModel, swapped: float, fps_before: float) -> None:
        _pause("probation")
        if self._end_probation.wait(self.update.probation_s):
            return  # an error already rolled it back, or the run is closing (the store keeps the probation)
        if not self.slot.on_probation:
            return
        frames, fps = self.slot.rate_since(swapped)
        limit = self.update.min_fps_ratio * fps_before
        if fps_before > 0 and frames > 1 and fps < limit:
            reason = (f"probation failed: {fps:.1f} fps against the previous model's {fps_before:.1f} "
                      f"(limit {limit:.1f} = {self.update.min_fps_ratio:.0%})")
            self.slot.revert()
            self.store.rollback(reason)
            self._record("probation_failed", model=stored.sha256, version=stored.version, reason=reason)
            return
        self.slot.confirm()
        self.store.confirm()
        self._record("confirmed", model=stored.sha256, version=stored.version, frames=frames,
                     fps=round(fps, 2), fps_before=round(fps_before, 2))
        log.info("probation passed: %s confirmed (%d frames, %.1f fps; before %.1f fps)",
                 stored.short, frames, fps, fps_before)

    def _on_slot_error(self, failed: Loaded, restored: Loaded, err: BaseException) -> None:
        reason = f"probation failed: the model raised on a frame ({type(err).__name__}: {err})"
        self._end_probation.set()
        failed.backend.close()
        try:
            self.store.rollback(reason)
        except EdgeclsError as store_err:
            log.error("rollback not recorded: %s", store_err)

    def rollback(self) -> StoredModel:
        """By hand: put the previous model back, between two frames."""
        with self._busy:
            if self.slot.on_probation:
                self._end_probation.set()
                self.slot.revert()
                return self.store.rollback("by hand during probation")
            stored = self.store.rollback("by hand")
            loaded = open_stored(self.options, stored)
            old = self.slot.swap(loaded.info, loaded.backend, loaded.classifier, loaded.ref)
            old.backend.close()
            return stored

    def close(self) -> None:
        self._end_probation.set()


class Updates:
    """What ``edgecls run --store ... --inbox ...`` adds to the loop; closed with it."""

    def __init__(self, manager: UpdateManager, watcher: Any, lock: int | None) -> None:
        self.manager, self.watcher, self.lock = manager, watcher, lock

    def close(self) -> None:
        if self.watcher is not None:
            self.watcher.close()
        self.manager.close()
        if self.lock is not None:
            os.close(self.lock)
            self.lock = None


def resolve_store(options: RunOptions) -> tuple[RunOptions, ModelRef | None]:
    """``--store``: recover the store and point the options at its current model."""
    if options.store is None:
        return options, None
    from edgecls.package import load_public_keys

    trusted = load_public_keys(options.trust) if options.trust else None
    stored = ModelStore(options.store).recover(trusted)
    return replace(options, model=stored.model, labels=None), ref_of(stored)


def start_updates(options: RunOptions, slot: ClassifierSlot) -> Updates | None:
    """``--store``: the gate, the ``--inbox`` watcher and the rollback-request poller
    (everything checked before capture starts)."""
    if options.store is None:
        if options.inbox is not None:
            from edgecls.errors import DataError

            raise DataError("--inbox needs --store DIR: packages are installed into a model store")
        return None
    from edgecls.errors import DataError
    from edgecls.package import load_public_keys

    if options.inbox is not None and not options.trust:
        raise DataError("--inbox needs --trust KEY.pub: packages are accepted only when signed by a trusted key")
    if options.probation_s < 0:
        raise DataError(f"--probation must be 0 or more seconds, got {options.probation_s}")
    store = ModelStore(options.store)
    lock = store.hold()
    if lock is None:
        raise DataError(f"another edgecls process is serving --store {options.store}: stop it first")
    manager = UpdateManager(store, load_public_keys(options.trust), slot, options,
                            UpdateOptions(probation_s=options.probation_s))
    from .inbox import InboxWatcher

    try:
        watcher = InboxWatcher(options.inbox, manager)
    except BaseException:
        os.close(lock)
        raise
    log.info("store %s: running %s%s", options.store, slot.current.ref.short if slot.current.ref else "?",
             f"; watching {options.inbox} for packages" if options.inbox else "")
    return Updates(manager, watcher, lock)
