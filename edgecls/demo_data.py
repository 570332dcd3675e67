"""Built-in data: a deterministic image-folder dataset of shapes in clutter.

The task is the article's (a folder with one subfolder per class), made hard enough that
training matters: each image is a shape of one class on a cluttered, noisy background,
at a random colour, size, position and rotation, sometimes blurred, small or faint.
About one image in ten is a deliberately hard case (tiny, low-contrast or heavily
blurred). The default is two classes, like the article's cats and dogs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edgecls.errors import DataError
from edgecls.fsutil import StagedDir, check_writable_dir

SHAPES = ("circle", "cross", "triangle", "square", "star", "ring")
#: Formats written, in rotation, so every decoder the trainer accepts is exercised.
_FORMATS = (".png", ".jpg", ".png", ".jpg", ".webp", ".png", ".jpg", ".png", ".jpg", ".png", ".jpg", ".bmp")


@dataclass(frozen=True)
class DemoDataOptions:
    """What to generate.

    classes: number of classes (2 to 6); the first N of SHAPES.
    train_per_class / test_per_class: images per class in train/ and test/.
    seed: the same seed gives byte-identical files.
    """

    classes: int = 2
    train_per_class: int = 3000
    test_per_class: int = 400
    seed: int = 0


def _shape_points(kind: str, cx: float, cy: float, r: float, angle: float) -> np.ndarray:
    if kind == "square":
        ts = [angle + math.pi / 4 + k * math.pi / 2 for k in range(4)]
        pts = [(cx + r * math.cos(t), cy + r * math.sin(t)) for t in ts]
    elif kind == "triangle":
        ts = [angle + k * 2 * math.pi / 3 for k in range(3)]
        pts = [(cx + r * math.cos(t), cy + r * math.sin(t)) for t in ts]
    elif kind == "star":
        pts = []
        for k in range(10):
            rr = r if k % 2 == 0 else r * 0.45
            t = angle + k * math.pi / 5
            pts.append((cx + rr * math.cos(t), cy + rr * math.sin(t)))
    elif kind == "cross":
        w = r * 0.35
        base = [(-r, -w), (-w, -w), (-w, -r), (w, -r), (w, -w), (r, -w),
                (r, w), (w, w), (w, r), (-w, r), (-w, w), (-r, w)]
        c, s = math.cos(angle), math.sin(angle)
        pts = [(cx + x * c - y * s, cy + x * s + y * c) for x, y in base]
    else:
        raise ValueError(kind)
    return np.round(np.array(pts) * 16).astype(np.int32)  # 4 fractional bits


def _draw_shape(img: np.ndarray, kind: str, cx: float, cy: float, r: float, angle: float,
                colour: tuple[int, int, int]) -> None:
    if kind in ("circle", "ring"):
        centre = (round(cx * 16), round(cy * 16))
        if kind == "circle":
            cv2.circle(img, centre, round(r * 16), colour, -1, cv2.LINE_AA, 4)
        else:
            cv2.circle(img, centre, round(r * 0.8 * 16), colour, max(2, round(r * 0.35)), cv2.LINE_AA, 4)
        return
    cv2.fillPoly(img, [_shape_points(kind, cx, cy, r, angle)], colour, cv2.LINE_AA, 4)


def _colour(rng: np.random.Generator) -> tuple[int, int, int]:
    return tuple(int(v) for v in rng.integers(0, 256, 3))  # type: ignore[return-value]


def _background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    a = np.array(_colour(rng), np.float32)
    b = np.array(_colour(rng), np.float32)
    t = np.linspace(0.0, 1.0, w, dtype=np.float32)[None, :, None]
    if rng.random() < 0.5:
        t = np.linspace(0.0, 1.0, h, dtype=np.float32)[:, None, None]
    img = np.broadcast_to(a * (1 - t) + b * t, (h, w, 3)).astype(np.uint8).copy()
    # clutter: lines, small blobs and thin arcs in random colours
    for _ in range(int(rng.integers(2, 9))):
        p1 = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        p2 = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        cv2.line(img, p1, p2, _colour(rng), 1, cv2.LINE_AA)
    for _ in range(int(rng.integers(1, 6))):
        c = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        axes = (int(rng.integers(2, max(3, w // 18))), int(rng.integers(2, max(3, h // 18))))
        cv2.ellipse(img, c, axes, float(rng.uniform(0, 180)), 0, 360, _colour(rng), -1, cv2.LINE_AA)
    return img


#: Share of deliberately hard images (see the module docstring).
HARD_SHARE = 0.1


def render(kind: str, rng: np.random.Generator, size: tuple[int, int] | None = None) -> np.ndarray:
    """One BGR image of a ``kind`` shape in clutter; ``size`` (h, w) or a random one."""
    h, w = size if size is not None else (int(rng.integers(64, 160)), int(rng.integers(64, 160)))
    img = _background(rng, h, w)
    hard = rng.random() < HARD_SHARE
    m = min(h, w)
    r = m * (rng.uniform(0.12, 0.18) if hard else rng.uniform(0.2, 0.4))
    cx = rng.uniform(r, w - r)
    cy = rng.uniform(r, h - r)
    local = img[int(cy), int(cx)].astype(int)
    colour = _colour(rng)
    for _ in range(20):  # most shapes stand out from the background in brightness
        if abs(int(np.mean(colour)) - int(local.mean())) > 60:
            break
        colour = _colour(rng)
    if hard and rng.random() < 0.5:
        # low contrast: the shape's colour is close to the local background
        colour = tuple(int(v) for v in np.clip(local + rng.integers(-40, 41, 3), 0, 255))  # type: ignore[assignment]
    _draw_shape(img, kind, cx, cy, r, rng.uniform(0, 2 * math.pi), colour)
    sigma = rng.uniform(1.5, 2.5) if hard else rng.uniform(0.0, 1.0)
    if sigma > 0.3:
        img = cv2.GaussianBlur(img, (0, 0), sigma)
    noise = rng.normal(0.0, rng.uniform(2.0, 12.0), img.shape)
    return np.clip(img + noise, 0, 255).astype(np.uint8)


def _encode(img: np.ndarray, ext: str) -> bytes:
    params = [cv2.IMWRITE_JPEG_QUALITY, 90] if ext == ".jpg" else []
    if ext == ".webp":
        params = [cv2.IMWRITE_WEBP_QUALITY, 101]  # lossless
    ok, buf = cv2.imencode(ext, img, params)
    if not ok:
        raise DataError(f"OpenCV cannot encode {ext} images here: reinstall opencv-python-headless")
    return buf.tobytes()


def generate(out_dir: Path, options: DemoDataOptions, *, force: bool = False) -> dict[str, int]:
    """Write ``out_dir/{train,test}/<class>/*.{png,jpg,...}``; return counts per split."""
    if not 2 <= options.classes <= len(SHAPES):
        raise DataError(f"--classes must be 2 to {len(SHAPES)}, got {options.classes}")
    if options.train_per_class < 1 or options.test_per_class < 1:
        raise DataError("images per class must be at least 1")
    check_writable_dir(out_dir, force=force, what="demo data folder")
    classes = SHAPES[: options.classes]
    counts = {"train": 0, "test": 0}
    with StagedDir(out_dir) as staged:
        for split, per_class, salt in (("train", options.train_per_class, 1), ("test", options.test_per_class, 2)):
            for ci, kind in enumerate(classes):
                folder = staged.path / split / kind
                folder.mkdir(parents=True)
                rng = np.random.default_rng([options.seed, salt, ci])
                for i in range(per_class):
                    ext = _FORMATS[i % len(_FORMATS)]
                    (folder / f"{kind}_{i:05d}{ext}").write_bytes(_encode(render(kind, rng), ext))
                    counts[split] += 1
        staged.commit()
    return counts


@dataclass(frozen=True)
class DemoVideoOptions:
    """A camera-like clip: ``seconds`` at ``fps``, 640x480, the class changing every
    ``segment_s`` seconds (cycling through the first ``classes`` shapes), the scene drifting
    slowly with fresh sensor noise every frame."""

    classes: int = 2
    seconds: float = 20.0
    fps: int = 30
    segment_s: float = 2.0
    width: int = 640
    height: int = 480
    seed: int = 0


def generate_video(out: Path, options: DemoVideoOptions) -> list[str]:
    """Write an MJPG .avi and ``<out>.truth.json`` (the class of every frame); return the truths."""
    from edgecls.fsutil import atomic_write_json

    if not 2 <= options.classes <= len(SHAPES):
        raise DataError(f"--classes must be 2 to {len(SHAPES)}, got {options.classes}")
    if options.seconds <= 0 or options.fps < 1 or options.segment_s <= 0:
        raise DataError("--seconds, --fps and the segment length must be positive")
    out = Path(out)
    if out.suffix.lower() != ".avi":
        raise DataError(f"the demo video is MJPG in an .avi container: name it *.avi, got {out.name}")
    rng = np.random.default_rng([options.seed, 99])
    w, h = options.width, options.height
    frames = round(options.seconds * options.fps)
    per_segment = max(1, round(options.segment_s * options.fps))
    # a small bank of sensor noise, reused in rotation: drawing fresh noise per frame costs more than the rest
    bank = [rng.normal(0, 4.0, (h + 8, w + 8, 3)).astype(np.float32) for _ in range(5)]
    tmp = out.with_name(f".{out.name}.tmp.avi")
    writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter.fourcc(*"MJPG"), options.fps, (w, h))
    if not writer.isOpened():
        raise DataError(f"OpenCV cannot write MJPG video to {out}: check the folder is writable")
    truths: list[str] = []
    try:
        scene = np.zeros((h, w, 3), np.uint8)
        kind = SHAPES[0]
        for i in range(frames):
            seg = i // per_segment
            if i % per_segment == 0:
                kind = SHAPES[seg % options.classes]
                scene = render(kind, rng, (h, w))
            t = (i % per_segment) / per_segment
            shift = np.array([[1, 0, 6 * np.sin(2 * np.pi * t)], [0, 1, 4 * np.cos(2 * np.pi * t)]], np.float32)
            moved = cv2.warpAffine(scene, shift, (w, h), borderMode=cv2.BORDER_REFLECT)
            off = i % 8
            noise = bank[i % len(bank)][off : off + h, off : off + w]
            writer.write(np.clip(moved + noise, 0, 255).astype(np.uint8))
            truths.append(kind)
    finally:
        writer.release()
    tmp.replace(out)
    atomic_write_json(out.with_name(out.name + ".truth.json"),
                      {"fps": options.fps, "labels": sorted(SHAPES[: options.classes]), "truth": truths})
    return truths
