"""Real parts for the update tests: signed packages from a trained run, a device process
(``edgecls run --store --inbox``) driven through its inbox, and JSONL gap figures."""

from __future__ import annotations

import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def drop(package: Path, inbox: Path, name: str | None = None) -> Path:
    """Copy a package into the inbox the way rsync does: a dotfile, then a rename into place."""
    target = inbox / (name or package.name)
    tmp = inbox / f".{target.name}.partial"
    shutil.copyfile(package, tmp)
    os.replace(tmp, target)
    return target


def flip_byte(src: Path, dst: Path, member: str = "model.tflite") -> Path:
    """A copy of ``src`` with one byte of ``member``'s data changed."""
    import zipfile

    data = bytearray(src.read_bytes())
    with zipfile.ZipFile(src) as zf:
        info = zf.getinfo(member)
    # the local header is 30 bytes plus the name and extra field; change a byte well inside the data
    offset = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra) + info.compress_size // 2
    data[offset] ^= 0x01
    dst.write_bytes(bytes(data))
    return dst


@dataclass
class Device:
    """One ``edgecls run`` process; stderr goes to a file read while it runs."""

    proc: subprocess.Popen[bytes]
    log: Path
    jsonl: Path

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, needle: str, timeout: float = 120.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.text()
            if needle in text:
                return text
            if self.proc.poll() is not None:
                text = self.text()
                if needle in text:
                    return text
                raise AssertionError(f"device exited ({self.proc.returncode}) before {needle!r}:\n{text}")
            time.sleep(0.1)
        raise AssertionError(f"no {needle!r} within {timeout} s:\n{self.text()}")

    def records(self) -> list[dict[str, Any]]:
        if not self.jsonl.exists():
            return []
        lines = [json.loads(line) for line in self.jsonl.read_text().splitlines() if line.endswith("}")]
        return [r for r in lines if "event" not in r]  # frames only: not run_start / run_end

    def kill9(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(30)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(60)


def start_device(store: Path, trust: Path, source: Path, work: Path, *, inbox: Path | None = None,
                 probation: float = 2.0, env: dict[str, str] | None = None, extra: tuple[str, ...] = (),
                 realtime: bool = True, tag: str = "run") -> Device:
    log, jsonl = work / f"{tag}.log", work / f"{tag}.jsonl"
    cmd = [sys.executable, "-m", "edgecls", "run", "--store", str(store), "--trust", str(trust),
           "--source", str(source), "--headless", "--quiet", "--jsonl", str(jsonl), "--stats-every", "0",
           "--probation", str(probation), *(["--realtime"] if realtime else []),
           *(["--inbox", str(inbox)] if inbox is not None else []), *extra]
    full_env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "COLUMNS": "200", **(env or {})}
    with open(log, "wb") as fh:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=fh, env=full_env, cwd=REPO)
    return Device(proc, log, jsonl)


def emission_gaps(records: list[dict[str, Any]]) -> list[float]:
    """Seconds between consecutive results (capture time + latency = when each was emitted)."""
    times = [r["ts"] + r["latency_ms"] / 1000.0 for r in records]
    return [b - a for a, b in itertools.pairwise(times)]


def swap_gap(records: list[dict[str, Any]], new_sha: str) -> tuple[float, int]:
    """The gap between the last result of the old model and the first of ``new_sha``, and that index."""
    first = next(i for i, r in enumerate(records) if r.get("model_sha256") == new_sha)
    assert first > 0, "the new model classified the very first frame: no swap was seen"
    gaps = emission_gaps(records)
    return gaps[first - 1], first
