"""Hostile or huge input is refused, not obeyed: image pixel bombs, bundle archives that
smuggle files or point outside themselves, absurd thread counts, the preview's viewer cap
under a crowd, and sources whose names look like something else."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import struct
import tarfile
import threading
import zipfile
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import assert_one_line_error, run_cli
from device_helpers import cached_plain_models, camera_like_frames, write_video

from edgecls import bundle as bundle_mod
from edgecls.bundle import (
    DEFAULT_TOLERANCES,
    BundleItem,
    Tolerance,
    _pack,
    open_bundle,
    write_bundle,
)
from edgecls.errors import DataError
from edgecls.folders import load_scan, scan_folder
from edgecls.images import IMAGE_EXTENSIONS, read_image_checked
from edgecls.spec import ModelSpec


@pytest.fixture(scope="session")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return cached_plain_models(tmp_path_factory)


def png_bomb(path: Path, side: int) -> Path:
    """A PNG whose header declares side x side RGB pixels; its data is a few rows of zeros
    (a real 30000x30000 one compresses to 151 KB; the header is what must stop the decoder)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\0" * (side * 3 + 1) * 4, 9)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b""))
    return path


def test_pixel_bomb_refused_from_its_header(tmp_path: Path) -> None:
    image, why = read_image_checked(png_bomb(tmp_path / "bomb.png", 40000))
    assert image is None and "40000x40000 pixels is over the limit" in why and "EDGECLS_MAX_IMAGE_PIXELS" in why


def test_pixel_limit_is_configurable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "small.png"
    cv2.imwrite(str(path), np.zeros((64, 64, 3), np.uint8))
    assert read_image_checked(path)[0] is not None
    monkeypatch.setenv("EDGECLS_MAX_IMAGE_PIXELS", "1000")
    assert "64x64 pixels is over the limit of 1,000" in read_image_checked(path)[1]


@pytest.mark.parametrize("ext", sorted(IMAGE_EXTENSIONS))
def test_header_sizes_of_every_accepted_format(ext: str, tmp_path: Path) -> None:
    from edgecls.imageheader import image_size

    img = camera_like_frames(["circle"], 1, size=(53, 37))[0]
    if ext == ".pgm":
        img = img[:, :, 0]
    ok, buf = cv2.imencode(".jpg" if ext == ".jpeg" else ext, img)
    assert ok
    assert image_size(buf.tobytes()) == (53, 37)


def test_training_loader_skips_and_counts_a_bomb(tmp_path: Path) -> None:
    for cls in ("a", "b"):
        (tmp_path / cls).mkdir()
        for i, img in enumerate(camera_like_frames(["circle"], 3, size=(64, 64))):
            cv2.imwrite(str(tmp_path / cls / f"{i}.png"), img)
    png_bomb(tmp_path / "a" / "huge.png", 40000)
    loaded = load_scan(scan_folder(tmp_path))
    assert len(loaded.y) == 6 and [p.name for p in loaded.skipped] == ["huge.png"]


def test_device_folder_run_skips_a_bomb_and_continues(models: dict[str, Path], tmp_path: Path) -> None:
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i, img in enumerate(camera_like_frames(["circle"], 3, size=(96, 96))):
        cv2.imwrite(str(folder / f"{i}.png"), img)
    png_bomb(folder / "1_bomb.png", 40000)
    (folder / "9.tif").write_bytes(cv2.imencode(".tif", camera_like_frames(["cross"], 1, size=(96, 96))[0])[1].tobytes())
    (folder / "8.gif").write_bytes(cv2.imencode(".gif", camera_like_frames(["cross"], 1, size=(96, 96))[0])[1].tobytes())
    out = tmp_path / "r.jsonl"
    proc = run_cli("run", "--model", str(models["sigmoid_u8"]), "--source", str(folder), "--headless", "--quiet",
                   "--jsonl", str(out), check=True)
    recs = [json.loads(line) for line in out.read_text().splitlines()]
    files = [r["file"] for r in recs if "event" not in r]
    assert files == ["0.png", "1.png", "2.png", "8.gif", "9.tif"], "the same extensions as training, the bomb skipped"
    assert recs[-1]["skipped_files"] == 1
    warned = [line for line in proc.stderr.splitlines() if "1_bomb.png" in line]
    assert len(warned) == 1 and "over the limit" in warned[0]


def test_num_threads_bounded(models: dict[str, Path], tmp_path: Path) -> None:
    video = write_video(tmp_path / "v.avi", camera_like_frames(["circle"], 2, size=(96, 96)))
    assert_one_line_error(run_cli("run", "--model", str(models["sigmoid_u8"]), "--source", str(video), "--headless",
                                  "--num-threads", "100000"), "--num-threads must be from 1 to 64")


def test_decode_threads_bounded(models: dict[str, Path], tmp_path: Path) -> None:
    video = write_video(tmp_path / "v.avi", camera_like_frames(["circle"], 2, size=(96, 96)))
    for value in ("-1", "1000"):
        assert_one_line_error(run_cli("run", "--model", str(models["sigmoid_u8"]), "--source", str(video), "--headless",
                                      "--decode-threads", value), f"--decode-threads must be from 0 (FFmpeg picks, one per core) to 16, got {value}")


def test_existing_paths_win_over_lookalikes(models: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from edgecls.device.sources import parse_source

    monkeypatch.chdir(tmp_path)
    (tmp_path / "5").mkdir()
    cv2.imwrite(str(tmp_path / "5" / "a.png"), camera_like_frames(["circle"], 1, size=(96, 96))[0])
    write_video(tmp_path / "clip!1.avi", camera_like_frames(["circle"], 3, size=(96, 96)))
    assert parse_source("5").kind == "folder" and parse_source("clip!1.avi").kind == "file"
    assert parse_source("7").kind == "camera" and parse_source("videotestsrc ! appsink").kind == "gstreamer"
    for source, frames in (("5", 1), ("clip!1.avi", 3)):
        proc = run_cli("run", "--model", str(models["sigmoid_u8"]), "--source", source, "--headless", "--quiet", check=True)
        assert f"done: {frames} frames" in proc.stderr


# -- bundles ------------------------------------------------------------------------------

def small_bundle(out: Path) -> Path:
    spec = ModelSpec(labels=("cat", "dog"), head="sigmoid")
    imgs = camera_like_frames(["circle", "cross"], 2, size=(64, 64))
    images = [cv2.imencode(".png", im)[1].tobytes() for im in imgs]
    items = [BundleItem(f"images/{i:04d}_{lab}.png", lab, ci, "host", "stratified", 0.5)
             for i, (lab, ci) in enumerate([("cat", 0), ("cat", 0), ("dog", 1), ("dog", 1)])]
    n = len(items)
    arrays = {"tensors": np.zeros((n, 64, 64, 3), np.uint8), "float_probs": np.full((n, 2), 0.5),
              "int8_raw": np.zeros((n, 1), np.uint8), "int8_raw_builtin": np.zeros((n, 1), np.uint8)}
    tolerances = {**DEFAULT_TOLERANCES, "min_top1_agreement": Tolerance(0.9, "test")}
    return write_bundle(out, model_name="m.tflite", model_sha256="0" * 64, edgetpu_sha256=None, spec=spec,
                        items=items, images=images, arrays=arrays, host={}, tolerances=tolerances)


def edit_manifest(root: Path, change) -> None:  # type: ignore[no-untyped-def]
    manifest = json.loads((root / "manifest.json").read_text())
    change(manifest)
    (root / "manifest.json").write_text(json.dumps(manifest))


def field_check(models: dict[str, Path], bundle: Path):  # type: ignore[no-untyped-def]
    return run_cli("field", "check", "--model", str(models["sigmoid_u8"]), "--bundle", str(bundle))


def test_manifest_path_outside_the_bundle_refused(models: dict[str, Path], tmp_path: Path) -> None:
    outside = tmp_path / "secret.txt"
    outside.write_text("host secret\n")
    for i, name in enumerate((str(outside), "../secret.txt")):
        root = small_bundle(tmp_path / f"b{i}" / "bundle")
        (tmp_path / f"b{i}" / "secret.txt").write_text("host secret\n")
        edit_manifest(root, lambda m, name=name: m["files"].update({name: hashlib.sha256(b"host secret\n").hexdigest()}))
        assert_one_line_error(field_check(models, root), "outside the bundle")


def test_archive_member_the_manifest_does_not_list_refused(models: dict[str, Path], tmp_path: Path) -> None:
    root = small_bundle(tmp_path / "bundle")
    (root / "evil.sh").write_text("#!/bin/sh\n")
    for suffix in (".tar", ".zip"):
        archive = tmp_path / f"b{suffix}"
        archive.write_bytes(_pack(root, suffix))
        assert_one_line_error(field_check(models, archive), "holds files its manifest does not list (evil.sh)")


def test_deep_manifest_refused(models: dict[str, Path], tmp_path: Path) -> None:
    root = small_bundle(tmp_path / "bundle")
    text = (root / "manifest.json").read_text().rstrip()
    (root / "manifest.json").write_text(text[:-1] + ', "x": ' + "[" * 100_000 + "]" * 100_000 + "}")
    assert_one_line_error(field_check(models, root), "nested too deeply")
    (root / "manifest.json").write_text(text[:-1] + ', "x": ' + "[" * 40 + "]" * 40 + "}")
    assert_one_line_error(field_check(models, root), "nested deeper than 32")


def test_npy_header_declaring_a_huge_shape_refused(models: dict[str, Path], tmp_path: Path) -> None:
    root = small_bundle(tmp_path / "bundle")
    data = (root / "float_probs.npy").read_bytes()
    header_end = data.index(b"\n") + 1
    header = data[10:header_end].decode("latin1").replace("(4, 2)", "(4000000000, 2)")
    fake = b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode("latin1") + data[header_end:]
    (root / "float_probs.npy").write_bytes(fake)
    edit_manifest(root, lambda m: m["files"].update({"float_probs.npy": hashlib.sha256(fake).hexdigest()}))
    assert_one_line_error(field_check(models, root), "declares shape (4000000000, 2)")


def test_extracted_size_is_capped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = small_bundle(tmp_path / "bundle")
    archive = tmp_path / "b.zip"
    archive.write_bytes(_pack(root, ".zip"))
    with open_bundle(archive) as b:
        assert len(b.items) == 4
    monkeypatch.setattr(bundle_mod, "MAX_EXTRACTED_BYTES", 10_000)
    with pytest.raises(DataError, match=r"would unpack to .* over the limit of 10,000"), open_bundle(archive):
        pass


def test_zip_bomb_declared_size_refused_before_unpacking(models: dict[str, Path], tmp_path: Path) -> None:
    root = small_bundle(tmp_path / "bundle")
    archive = tmp_path / "bomb.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for p in sorted(root.rglob("*")):
            if p.is_file():
                zf.write(p, p.relative_to(root).as_posix())
        with zf.open("images/zeros.bin", "w", force_zip64=True) as fh:
            block = b"\0" * (1 << 20)
            for _ in range(600):
                fh.write(block)
    assert archive.stat().st_size < 2 << 20
    assert_one_line_error(field_check(models, archive), "over the limit")


def test_tar_with_a_link_refused(models: dict[str, Path], tmp_path: Path) -> None:
    root = small_bundle(tmp_path / "bundle")
    archive = tmp_path / "b.tar"
    with tarfile.open(archive, "w") as tf:
        tf.add(root, "", recursive=True)
        link = tarfile.TarInfo("images/link")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/hostname"
        tf.addfile(link)
    assert_one_line_error(field_check(models, archive), "links or special files")


# -- the preview's viewer cap ---------------------------------------------------------------

def test_viewer_cap_holds_under_200_simultaneous_clients(models: dict[str, Path]) -> None:
    from edgecls.device.model import read_model_info
    from edgecls.device.serve import PreviewSink
    from edgecls.device.serve.server import MAX_VIEWERS, Address

    sink = PreviewSink(Address("127.0.0.1", 0), read_model_info(models["sigmoid_u8"]), "cpu", "test")
    port = sink.address.port
    start = threading.Barrier(200)
    codes: list[str] = []
    socks: list[socket.socket] = []
    lock = threading.Lock()

    def viewer() -> None:
        s = socket.create_connection(("127.0.0.1", port), timeout=60)  # generous: CI machines are loaded
        with lock:
            socks.append(s)
        start.wait()
        s.sendall(b"GET /stream HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        line = s.makefile("rb").readline().decode()
        with lock:
            codes.append(line.split()[1] if line else "none")

    threads = [threading.Thread(target=viewer) for _ in range(200)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(90)
        assert len(codes) == 200
        assert codes.count("200") == MAX_VIEWERS and codes.count("503") == 200 - MAX_VIEWERS, sorted(set(codes))
        assert sink.preview.viewers == MAX_VIEWERS
    finally:
        for s in socks:
            s.close()
        sink.close()
    print(f"200 simultaneous clients: {codes.count('200')} admitted, {codes.count('503')} refused with 503")


def test_cli_imports_no_secret_in_messages(tmp_path: Path, models: dict[str, Path]) -> None:
    proc = run_cli("run", "--model", str(models["sigmoid_u8"]), "--source", "rtsp://admin:hunter2@127.0.0.1:9/x",
                   "--headless")
    assert proc.returncode != 0 and "hunter2" not in proc.stderr + proc.stdout and "admin" not in proc.stderr
    assert "rtsp://***@127.0.0.1:9/x" in proc.stderr, proc.stderr
    assert os.environ.get("EDGECLS_MAX_IMAGE_PIXELS") is None
