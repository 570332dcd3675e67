"""A real Mosquitto (Debian's) on a random loopback port, with persistence, that tests can
SIGKILL and restart on the same port and data folder."""

from __future__ import annotations

import contextlib
import getpass
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

MOSQUITTO = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if os.path.exists("/usr/sbin/mosquitto") else None)
MOSQUITTO_PASSWD = shutil.which("mosquitto_passwd")
needs_mosquitto = pytest.mark.skipif(
    MOSQUITTO is None, reason="mosquitto is not installed (scripts/test installs it as root: apt-get install -y mosquitto)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Mosquitto:
    """``start()``, ``kill()`` (SIGKILL), ``start()`` again: same port, same persistence file,
    saved every second, so sessions (a collector's subscription) survive a SIGKILL."""

    def __init__(self, folder: Path, *, extra: str = "", anonymous: bool = True, port: int | None = None) -> None:
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.url = f"mqtt://127.0.0.1:{self.port}"
        self.config = folder / "mosquitto.conf"
        self.config.write_text(
            f"listener {self.port} 127.0.0.1\n"
            # run as whoever runs the tests: as root, mosquitto would switch to its own user and
            # then could not read the test's files (password file, persistence folder, log)
            f"user {getpass.getuser()}\n"
            f"allow_anonymous {'true' if anonymous else 'false'}\n"
            "persistence true\n"
            f"persistence_location {folder}/\n"
            # saved every second (saving on every change stalls the broker under a fleet's load);
            # what a SIGKILL takes with it, the devices send again after the outage (REPLAY_S)
            "autosave_interval 1\n"
            "max_queued_messages 100000\n"
            f"log_dest file {folder}/mosquitto.log\n" + extra)
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self, timeout: float = 10.0) -> Mosquitto:
        assert MOSQUITTO is not None
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.config)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 0.2):
                self.starts += 1
                return self
            if self.proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited {self.proc.returncode}: {(self.folder / 'mosquitto.log').read_text()[-2000:]}")
            time.sleep(0.05)
        raise RuntimeError("mosquitto did not listen in time")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.kill()
        self.proc = None


def add_user(folder: Path, users: dict[str, str]) -> Path:
    """A mosquitto password file made by mosquitto_passwd."""
    assert MOSQUITTO_PASSWD is not None
    path = folder / "passwd"
    path.touch()
    for user, password in users.items():
        subprocess.run([MOSQUITTO_PASSWD, "-b", str(path), user, password], check=True, capture_output=True)
    path.chmod(0o600)
    return path
