"""The preview page in a real browser: Debian's Chromium, headless, driven by Playwright.

``edgecls run --serve`` classifies a camera-like stream (a video file of two classes,
1.5 s each, served and looped at 30 fps by ffmpeg on loopback, like an IP camera); the page
must show frames and its label must follow the video. A screenshot is saved under
pytest's temporary folder (and to ``$EDGECLS_ARTIFACTS`` when set). No browser is
downloaded: without /usr/bin/chromium (``apt-get install chromium``, which scripts/test
does as root) the test skips and says so.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from device_helpers import MjpegServer, camera_like_frames, free_port, needs_ffmpeg, write_video
from serve_helpers import status, stop_gracefully, wait_for

CHROMIUM = next((p for p in (os.environ.get("EDGECLS_CHROMIUM"), shutil.which("chromium"), "/usr/bin/chromium")
                 if p and Path(p).is_file()), None)
#: Keep a closed-network Chromium from trying to phone home, and runnable as root in a container.
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-default-apps",
                  "--disable-extensions", "--mute-audio"]
#: Frames of each class in the looped video (30 fps: 1.5 s a class).
PER_CLASS = 45

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (as root: apt-get install -y chromium; scripts/test does it)"),
    needs_ffmpeg,
]


def launch(playwright: object, profile: Path) -> object:
    """Debian's Chromium through Playwright: a fresh profile, no downloads."""
    return playwright.chromium.launch_persistent_context(  # type: ignore[attr-defined]
        str(profile), executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS,
        viewport={"width": 1100, "height": 640}, timeout=60_000,
    )


def test_preview_page_in_chromium(int8_model: Path, trained_run: Path, tmp_path: Path) -> None:
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed: pip install -e '.[dev]'")
    labels = (trained_run / "labels.txt").read_text().split()
    video = write_video(tmp_path / "two_classes.avi", camera_like_frames(labels, PER_CLASS, seed=11))
    port = free_port()
    env = {**os.environ, "COLUMNS": "200"}
    with MjpegServer(video) as cam:
        proc = subprocess.Popen([sys.executable, "-m", "edgecls", "run", "--model", str(int8_model), "--source", cam.url,
                                 "--headless", "--quiet", "--serve", f"127.0.0.1:{port}", "--stats-every", "0"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
        try:
            wait_for(lambda: status(port)["stats"], 30, "the first classified frames")
            with sync_api.sync_playwright() as pw, tempfile.TemporaryDirectory(prefix="edgecls-chromium-") as profile:
                browser = launch(pw, Path(profile))
                try:
                    page = browser.pages[0] if browser.pages else browser.new_page()  # type: ignore[attr-defined]
                    page.goto(f"http://127.0.0.1:{port}/", wait_until="domcontentloaded")
                    # Polled from here: wait_for_function evaluates a string, which the page's CSP forbids.
                    wait_for(lambda: page.evaluate("document.getElementById('stream').naturalWidth") > 0, 20,
                             "the stream to show a frame", every=0.1)
                    assert page.evaluate("document.getElementById('stream').naturalWidth") == 640
                    seen: list[str] = []
                    deadline = time.monotonic() + 15
                    while time.monotonic() < deadline and (len(seen) < 4 or set(seen) != set(labels)):
                        label = (page.text_content("#label") or "").strip()
                        if label in labels and (not seen or seen[-1] != label):
                            seen.append(label)
                        time.sleep(0.1)
                    assert set(seen) == set(labels) and len(seen) >= 3, f"the page's label went {seen}; the video alternates {labels}"
                    assert page.text_content("#conn") == "live"
                    assert page.text_content("#model") == int8_model.name
                    assert "ai-edge-litert" in (page.text_content("#backend") or "") or "tflite-runtime" in (page.text_content("#backend") or "")
                    assert float(page.text_content("#fps") or 0) > 5
                    assert page.locator("#history li").count() >= 2
                    shot = tmp_path / "preview.png"
                    page.screenshot(path=str(shot))
                finally:
                    browser.close()  # type: ignore[attr-defined]
            assert proc.poll() is None, "the classifier ran throughout"
        finally:
            err = stop_gracefully(proc)
    assert proc.returncode == 0 and "Traceback" not in err, err
    assert shot.stat().st_size > 10_000
    if os.environ.get("EDGECLS_ARTIFACTS"):
        out = Path(os.environ["EDGECLS_ARTIFACTS"])
        out.mkdir(parents=True, exist_ok=True)
        shutil.copy2(shot, out / "preview.png")
    print(f"screenshot: {shot}; labels on the page: {' -> '.join(seen)}")
