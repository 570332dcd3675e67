"""``--inbox``: packages dropped into a folder go through the gate (:mod:`.update`).

scp, rsync and Ansible copy files in different ways; the watcher takes a file only once it
is complete (see :class:`InboxWatcher`), and never takes the same file twice, even across
a crash. It also answers ``edgecls rollback`` run beside the live process.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from edgecls.errors import EdgeclsError, OutputError

if TYPE_CHECKING:
    from .update import UpdateManager

log = logging.getLogger("edgecls.device")

#: ``edgecls rollback`` writes this into a store a live process holds; the process answers it.
ROLLBACK_REQUEST = "rollback.request"


class InboxWatcher:
    """Polls ``--inbox`` for ``*.edgecls`` files and hands each complete one to ``submit``;
    also answers ``edgecls rollback`` run beside the live process (a request file in the store).

    Complete means: not a dotfile (rsync and many tools write ``.NAME.XXXX`` and rename),
    a ``.edgecls`` name, and the same size and mtime on two polls ``settle_s`` apart (scp
    writes in place). A taken package is first moved to ``INBOX/.taken/`` (never retried
    after a crash), then deleted when accepted or moved to ``INBOX/refused/`` with a
    ``.reason.txt`` beside it.
    """

    def __init__(self, inbox: Path | None, manager: UpdateManager, poll_s: float = 0.5, settle_s: float = 1.0) -> None:
        self.inbox = Path(inbox) if inbox is not None else None
        self.manager = manager
        self.poll_s, self.settle_s = poll_s, settle_s
        if self.inbox is not None:
            self._open_inbox(self.inbox)
        self._seen: dict[str, tuple[int, int, float]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="edgecls-inbox", daemon=True)
        self._thread.start()

    def _open_inbox(self, inbox: Path) -> None:
        self.taken, self.refused = inbox / ".taken", inbox / "refused"
        if not inbox.is_dir():
            raise OutputError(f"--inbox {inbox} is not a folder: create it (mkdir -p {inbox})")
        try:
            self.taken.mkdir(exist_ok=True)
            self.refused.mkdir(exist_ok=True)
            probe = self.taken / ".probe"
            probe.write_bytes(b"")
            probe.unlink()
            for left in self.taken.iterdir():
                os.replace(left, self.refused / left.name)
                (self.refused / f"{left.name}.reason.txt").write_text("interrupted by a restart: not retried\n")
        except OSError as err:
            raise OutputError(f"--inbox {inbox} is not writable ({err.strerror}): packages could not be taken "
                              "out of it; make it writable by this user or choose another folder") from err

    def _ready(self) -> list[Path]:
        if self.inbox is None:
            return []
        now = time.monotonic()
        ready = []
        names = set()
        for path in sorted(self.inbox.iterdir()):
            if path.name.startswith(".") or not path.name.endswith(".edgecls") or not path.is_file():
                continue
            names.add(path.name)
            st = path.stat()
            key = (st.st_size, st.st_mtime_ns)
            seen = self._seen.get(path.name)
            if seen is None or seen[:2] != key:
                self._seen[path.name] = (*key, now)
            elif now - seen[2] >= self.settle_s:
                ready.append(path)
        self._seen = {k: v for k, v in self._seen.items() if k in names}
        return ready

    def _loop(self) -> None:
        while not self._stop.wait(self.poll_s):
            try:
                self._answer_rollback()
                for path in self._ready():
                    self._take(path)
            except (OSError, EdgeclsError) as err:
                log.error("inbox %s: %s", self.inbox, err)

    def _take(self, path: Path) -> None:
        taken = self.taken / path.name
        os.replace(path, taken)
        self._seen.pop(path.name, None)
        log.info("inbox: taking %s", path.name)
        verdict = self.manager.submit(taken)
        if verdict.accepted:
            taken.unlink(missing_ok=True)
        else:
            shutil.move(str(taken), self.refused / path.name)
            (self.refused / f"{path.name}.reason.txt").write_text(verdict.reason + "\n")

    def _answer_rollback(self) -> None:
        request = self.manager.store.root / ROLLBACK_REQUEST
        if not request.exists():
            return
        request.unlink(missing_ok=True)
        stored = self.manager.rollback()
        log.info("rolled back by hand: now running %s", stored.short)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
