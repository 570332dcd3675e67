"""Built-in data: a deterministic image-folder dataset of shapes in clutter.

The task is the article's (a folder with one subfolder per class), made hard enough that
training matters: each image is a shape of one class on a cluttered, noisy background,
at a random colour, size, position and rotation, sometimes blurred, small or faint.
About one image in ten is a deliberately hard case (small and heavily blurred, half of
them also faint), hard but never invisible on the 64x64 model input: see MIN_SHAPE_PX
and FAINT_LUMA. The default is two classes, like the article's cats and dogs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edgecls.errors import DataError
from edgecls.fsutil import StagedDir, check_writable_dir
from edgecls.preprocess import INPUT_SIZE

SHAPES = ("circle", "cross", "triangle", "square", "star", "ring")
#: Formats written, in rotation, so every decoder the trainer accepts is exercised.
_FORMATS = (".png", ".jpg", ".png", ".jpg", ".webp", ".png", ".jpg", ".png", ".jpg", ".png", ".jpg", ".bmp")


@dataclass(frozen=True)
class DemoDataOptions:
    """What to generate.

    classes: number of classes (2 to 6); the first N of SHAPES.
    train_per_class / test_per_class / val_per_class: images per class in train/, test/ and
    val/ (val: as many as test unless given; 0: no val/). Three splits, so a trainer can pick
    its best epoch on val/ and the accuracy reported on test/ comes from images no choice
    was made on.
    seed: the same seed gives byte-identical files; each split draws its own images.
    """

    classes: int = 2
    train_per_class: int = 3000
    test_per_class: int = 400
    seed: int = 0
    val_per_class: int | None = None


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
#: Every shape is at least this many pixels across, along its narrowest axis, on the 64x64
#: model input (the resize squashes a wide picture's shapes). Tiny hard shapes drawn at
#: 0.12 of the short side of a 160x64 picture were 6 pixels across, a cross blurred into a
#: blob: label noise, not a hard case.
MIN_SHAPE_PX = 14
#: A faint shape's mean luma differs from the background under it by this much (0..255).
#: Drawn as a random offset of up to 40 per channel, one faint shape in four differed by 17
#: grey levels or less, some by about 10: gone after the blur, the noise and the resize.
FAINT_LUMA = (28.0, 44.0)
#: Shapes keep this share of each side clear of the border: the article's zoom (up to 20 %)
#: crops up to a tenth of each side, and a circle cut by the frame has straight edges and
#: corners while still labelled circle.
BORDER = 0.1
#: The widest picture (either orientation): 16:9, a camera's widest. The model squashes
#: every picture to a square, and at 2.5:1 a circle became a stick.
MAX_ASPECT = 16 / 9
_LUMA_BGR = np.array([0.114, 0.587, 0.299])


@dataclass(frozen=True)
class Drawn:
    """What one rendered image holds (for measuring where a model errs; see scripts/bench_demo.py).

    hard: a deliberately hard case (small and heavily blurred); faint: also low contrast.
    size_px: the shape's width across its narrowest axis on the 64x64 model input.
    contrast: |mean luma of the shape - mean luma of the background under it| (0..255).
    """

    hard: bool
    faint: bool
    size_px: float
    contrast: float


def _picture_size(rng: np.random.Generator) -> tuple[int, int]:
    h, w = int(rng.integers(64, 160)), int(rng.integers(64, 160))
    if max(h, w) > MAX_ASPECT * min(h, w):  # the long side is cut back to 16:9
        h, w = (min(h, int(w * MAX_ASPECT)), w) if h > w else (h, min(w, int(h * MAX_ASPECT)))
    return h, w


def _faint_colour(background: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A colour whose luma is FAINT_LUMA away from ``background`` (BGR), with a random tint."""
    tint = rng.integers(-40, 41, 3).astype(np.float64)
    tint -= float(tint @ _LUMA_BGR)  # a tint changes the hue, not the luma
    step = rng.uniform(*FAINT_LUMA) * (1 if rng.random() < 0.5 else -1)
    base = float(background @ _LUMA_BGR)
    if not 0 <= base + step <= 255:
        step = -step
    colour = np.clip(background + tint + step, 0, 255)
    shortfall = abs(step) - abs(float(colour @ _LUMA_BGR) - base)
    if shortfall > 0:  # clipping ate some of the contrast: move all channels back out
        colour = np.clip(colour + np.sign(step) * shortfall * 1.5, 0, 255)
    return colour


def render_drawn(kind: str, rng: np.random.Generator, size: tuple[int, int] | None = None,
                 model_size: int = INPUT_SIZE) -> tuple[np.ndarray, Drawn]:
    """One BGR image of a ``kind`` shape in clutter, and what it holds; ``size`` (h, w) or a random one."""
    h, w = size if size is not None else _picture_size(rng)
    img = _background(rng, h, w)
    hard = rng.random() < HARD_SHARE
    m = min(h, w)
    r = m * (rng.uniform(0.12, 0.18) if hard else rng.uniform(0.2, 0.4))
    r = min(max(r, MIN_SHAPE_PX / 2 * max(h, w) / model_size), 0.4 * m)
    cx = rng.uniform(r + BORDER * w, max(r + BORDER * w, w - r - BORDER * w))
    cy = rng.uniform(r + BORDER * h, max(r + BORDER * h, h - r - BORDER * h))
    angle = rng.uniform(0, 2 * math.pi)
    mask = np.zeros((h, w), np.uint8)
    _draw_shape(mask, kind, cx, cy, r, angle, (255, 255, 255))
    under = img[mask > 127].astype(np.float64).mean(axis=0) if (mask > 127).any() else img[int(cy), int(cx)].astype(np.float64)
    local = img[int(cy), int(cx)].astype(int)
    colour = _colour(rng)
    for _ in range(20):  # most shapes stand out from the background in brightness
        if abs(int(np.mean(colour)) - int(local.mean())) > 60:
            break
        colour = _colour(rng)
    faint = hard and rng.random() < 0.5
    if faint:  # low contrast: the shape's luma is close to the background's under it
        colour = tuple(round(float(v)) for v in _faint_colour(under, rng))  # type: ignore[assignment]
    _draw_shape(img, kind, cx, cy, r, angle, colour)
    contrast = abs(float(np.asarray(colour, np.float64) @ _LUMA_BGR) - float(under @ _LUMA_BGR))
    sigma = rng.uniform(1.5, 2.5) if hard else rng.uniform(0.0, 1.0)
    if sigma > 0.3:
        img = cv2.GaussianBlur(img, (0, 0), sigma)
    noise = rng.normal(0.0, rng.uniform(2.0, 12.0), img.shape)
    drawn = Drawn(hard=hard, faint=faint, size_px=2 * r * model_size / max(h, w), contrast=contrast)
    return np.clip(img + noise, 0, 255).astype(np.uint8), drawn


def render(kind: str, rng: np.random.Generator, size: tuple[int, int] | None = None) -> np.ndarray:
    """One BGR image of a ``kind`` shape in clutter; ``size`` (h, w) or a random one."""
    return render_drawn(kind, rng, size)[0]


def _encode(img: np.ndarray, ext: str) -> bytes:
    params = [cv2.IMWRITE_JPEG_QUALITY, 90] if ext == ".jpg" else []
    if ext == ".webp":
        params = [cv2.IMWRITE_WEBP_QUALITY, 101]  # lossless
    ok, buf = cv2.imencode(ext, img, params)
    if not ok:
        raise DataError(f"OpenCV cannot encode {ext} images here: reinstall opencv-python-headless")
    return buf.tobytes()


#: Each split and class draws from its own stream: val/ (salt 3) adds images, train/ and
#: test/ stay what they were without it.
_SALTS = {"train": 1, "test": 2, "val": 3}


def _split_rng(seed: int, split: str, class_index: int) -> np.random.Generator:
    return np.random.default_rng([seed, _SALTS[split], class_index])


def describe(options: DemoDataOptions, split: str, per_class: int) -> dict[str, Drawn]:
    """What each image of a split holds, keyed ``class/file`` as ``generate`` names it (drawn again, not read)."""
    out = {}
    for ci, kind in enumerate(SHAPES[: options.classes]):
        rng = _split_rng(options.seed, split, ci)
        for i in range(per_class):
            out[f"{kind}/{kind}_{i:05d}{_FORMATS[i % len(_FORMATS)]}"] = render_drawn(kind, rng)[1]
    return out


def generate(out_dir: Path, options: DemoDataOptions, *, force: bool = False) -> dict[str, int]:
    """Write ``out_dir/{train,val,test}/<class>/*.{png,jpg,...}``; return counts per split."""
    if not 2 <= options.classes <= len(SHAPES):
        raise DataError(f"--classes must be 2 to {len(SHAPES)}, got {options.classes}")
    if options.train_per_class < 1 or options.test_per_class < 1:
        raise DataError("images per class must be at least 1")
    val_per_class = options.test_per_class if options.val_per_class is None else options.val_per_class
    if val_per_class < 0:
        raise DataError(f"--val-per-class must be 0 or more, got {val_per_class}")
    check_writable_dir(out_dir, force=force, what="demo data folder")
    classes = SHAPES[: options.classes]
    splits = [("train", options.train_per_class), ("test", options.test_per_class)]
    if val_per_class:
        splits.insert(1, ("val", val_per_class))
    counts = {split: 0 for split, _ in splits}
    with StagedDir(out_dir) as staged:
        for split, per_class in splits:
            for ci, kind in enumerate(classes):
                folder = staged.path / split / kind
                folder.mkdir(parents=True)
                rng = _split_rng(options.seed, split, ci)
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


#: The demo video's scenes are drawn at most this big, then upscaled: the middle of the
#: training pictures' sizes (64 to 160), so as much of their noise and clutter survives the
#: resize to 64x64 as of a typical training picture's.
CAMERA_DRAW_MAX = 112


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
    # Each scene is drawn at a training picture's size and upscaled, as a camera's optics
    # blur below its sensor's resolution: drawn at 640x480, a scene's noise and clutter
    # lines vanished in the resize to 64x64, and its colour histograms sat further from the
    # training data's than chance puts a training sample (field replay's drift limits).
    scale = max(1.0, max(w, h) / CAMERA_DRAW_MAX)
    drawn_size = (max(64, round(h / scale)), max(64, round(w / scale)))
    truths: list[str] = []
    try:
        scene: np.ndarray = np.zeros((h, w, 3), np.uint8)
        kind = SHAPES[0]
        for i in range(frames):
            seg = i // per_segment
            if i % per_segment == 0:
                kind = SHAPES[seg % options.classes]
                scene = cv2.resize(render(kind, rng, drawn_size), (w, h), interpolation=cv2.INTER_LINEAR)
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
