"""Write the fixed inputs of the aarch64 check on the host: frames, image files and videos.

Everything is generated from fixed seeds, so host and device see the same bytes:

- ``arrays/*.npy``: camera-like frames (BGR, grey, BGRA) at the sizes a Pi meets (640x480,
  1280x720, 1920x1080), the article's 375x500 photos and odd or tiny sizes, each with
  smooth gradients, edges and sensor noise so every rounding step of the resize is used;
- ``images/``: the files of a small ``edgecls demo-data`` set (PNG, JPEG, WebP, BMP),
  which the device decodes itself;
- ``video-ffv1.avi`` (lossless, the input of ``edgecls run``) and ``video-mjpg.avi``
  (lossy, to see whether the decoder itself agrees across CPUs).

Runs in the host venv (demo-data needs only the core).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from edgecls.demo_data import DemoDataOptions, generate, render

#: (height, width): camera modes, the article's photos, odd, prime, tiny and already-64.
FRAME_SIZES = (
    (480, 640), (720, 1280), (1080, 1920), (375, 500), (500, 375), (333, 517),
    (257, 255), (127, 129), (100, 80), (64, 64), (33, 47), (31, 640), (1, 1),
)
VIDEO_SIZE = (640, 480)
VIDEO_FRAMES = 48


def natural(h: int, w: int, seed: int) -> np.ndarray:
    """A frame with gradients, hard edges and noise (uint8 BGR)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (max(2, h // 24), max(2, w // 24), 3), dtype=np.uint8)
    img = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    for _ in range(6):
        centre = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        cv2.circle(img, centre, max(1, min(h, w) // int(rng.integers(3, 12))), colour, -1)
    noise = rng.normal(0.0, 6.0, img.shape)
    return np.clip(img + noise, 0, 255).astype(np.uint8)


def write_arrays(out: Path) -> int:
    out.mkdir(parents=True)
    n = 0
    for i, (h, w) in enumerate(FRAME_SIZES):
        frame = natural(h, w, seed=i)
        np.save(out / f"bgr-{w}x{h}.npy", frame)
        n += 1
        if (h, w) in ((480, 640), (375, 500), (33, 47)):
            np.save(out / f"grey-{w}x{h}.npy", frame[:, :, 1].copy())
            alpha = np.full((h, w, 1), 200, np.uint8)
            np.save(out / f"bgra-{w}x{h}.npy", np.concatenate([frame, alpha], axis=2))
            n += 2
    return n


def write_videos(out: Path) -> None:
    """Shapes of the demo classes drifting over a cluttered 640x480 scene."""
    rng = np.random.default_rng(7)
    w, h = VIDEO_SIZE
    writers = {
        "video-ffv1.avi": cv2.VideoWriter(str(out / "video-ffv1.avi"), cv2.VideoWriter.fourcc(*"FFV1"), 15, (w, h)),
        "video-mjpg.avi": cv2.VideoWriter(str(out / "video-mjpg.avi"), cv2.VideoWriter.fourcc(*"MJPG"), 15, (w, h)),
    }
    for name, writer in writers.items():
        if not writer.isOpened():
            raise SystemExit(f"make_inputs: OpenCV cannot write {name} here")
    scenes = [render(kind, rng) for kind in ("circle", "cross", "circle", "cross")]
    for i in range(VIDEO_FRAMES):
        scene = scenes[(i * len(scenes)) // VIDEO_FRAMES]
        zoom = cv2.resize(scene, (w + 2 * i, h + i), interpolation=cv2.INTER_CUBIC)
        frame = np.ascontiguousarray(zoom[i // 2 : i // 2 + h, i : i + w])
        frame = np.clip(frame + rng.normal(0.0, 4.0, frame.shape), 0, 255).astype(np.uint8)
        for writer in writers.values():
            writer.write(frame)
    for writer in writers.values():
        writer.release()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("out", type=Path, help="folder to create")
    parser.add_argument("--per-class", type=int, default=24, help="demo-data training images per class")
    args = parser.parse_args()
    args.out.mkdir(parents=True)
    n = write_arrays(args.out / "arrays")
    counts = generate(args.out / "images", DemoDataOptions(2, args.per_class, max(1, args.per_class // 4), seed=3, val_per_class=0))
    write_videos(args.out)
    print(f"make_inputs: {n} frames, {counts['train'] + counts['test']} image files, 2 videos in {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
