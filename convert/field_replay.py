"""``edgecls field replay``: what the device saw, scored again on the host. Host only.

Two different ways a deployed model goes wrong are reported apart:

- quantization drift: on real field frames, does the float model (from the frames' stored
  tensors) agree with what the device's int8 model said? Disagreement here is the model
  format's fault, however the frames look.
- domain drift: do the field frames look like the training data (brightness, colour
  histograms of the model inputs)? A camera with another white balance or exposure fails
  here while quantization is fine: the fix is data, not conversion.

Each saved tensor is also checked against re-preprocessing its original PNG, so the
figures are about the frames the device really classified.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgecls.errors import DataError
from edgecls.evaluate import keras_probabilities
from edgecls.folders import load_items, scan_folder, stratified_sample
from edgecls.frameset import FRAME_NAME, FRAMES_FORMAT, SESSION_FILE
from edgecls.heads import top1
from edgecls.images import read_image
from edgecls.model import SPEC_FILE, load_keras_model
from edgecls.preprocess import to_model_input
from edgecls.spec import ModelSpec, load_spec

#: Field frames are ordinary inputs (no boundary enrichment), so hold them near host
#: parity's 99 %; 98 % leaves room for one flip in fifty frames of a short recording.
MIN_FIELD_AGREEMENT = 0.98
#: ... but one flip in a short recording is no evidence of anything: never fail on fewer.
MIN_FLIPS_TO_FAIL = 2
#: Jensen-Shannon distance (base 2, 0 = same, 1 = disjoint) between the field's and the
#: training data's histogram of one colour channel, below which no change counts as drift:
#: 40 frames of camera-like video of the built-in shapes (upscaled, MJPG) measured 0.13 to
#: 0.19 against their own training data; the same frames at 0.45x exposure 0.62.
MIN_HISTOGRAM_LIMIT = 0.2
#: Shift of the field's mean brightness, in training standard deviations (of per-image
#: mean luma), below which no change counts as drift.
MIN_BRIGHTNESS_LIMIT = 0.5
#: A few dozen frames differ from the training data by chance alone (each shape image has
#: its own background colours), so each limit is also at least this quantile of the same
#: statistic between random training subsets of the field's size and all training images
#: (``NULL_DRAWS`` draws): drift is what chance does not explain. Four statistics are
#: judged, so each gets a quarter of a 1 % false alarm rate: at the 99th percentile each,
#: 3.8 % of random training subsets of 10 scenes failed one of them (the demo's 10 scenes
#: sat at 0.32 against a limit of 0.33, and once failed).
NULL_QUANTILE = 1 - 0.01 / 4
#: Enough draws to place that quantile (5 draws above it); cheap, as a draw sums
#: per-image histograms.
NULL_DRAWS = 2000
#: Frames of one scene (a camera watching the same view) are not independent samples: two
#: consecutive saved tensors whose mean |difference| is under this many levels (of 255)
#: count as one scene, and chance is judged on the number of scenes, not frames.
SCENE_CUT = 25.0
#: Training images sampled (stratified) for the statistics: plenty for a histogram.
TRAIN_SAMPLE = 1000
HIST_BINS = 32
LUMA = np.array([0.299, 0.587, 0.114])


@dataclass(frozen=True)
class SavedFrames:
    """The complete frames of a --save-frames folder, in name order."""

    folder: Path
    session: dict[str, Any]
    records: tuple[dict[str, Any], ...]
    tensors: np.ndarray
    incomplete: tuple[str, ...]


def _foreign(names: list[str]) -> list[str]:
    return [n for n in names if n != SESSION_FILE and not FRAME_NAME.match(n)
            and not (n.startswith(".") and n.endswith(".tmp"))]


def load_frames(folder: Path, size: int) -> SavedFrames:
    """Validate a frames folder: only our files, complete frames, one image size, one tensor shape."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"frames folder {folder} does not exist: record one with 'edgecls run ... --save-frames {folder}'")
    names = sorted(p.name for p in folder.iterdir())
    if not names:
        raise DataError(f"frames folder {folder} is empty: record frames with 'edgecls run ... --save-frames {folder}'")
    foreign = _foreign(names)
    if foreign:
        more = f" and {len(foreign) - 3} more" if len(foreign) > 3 else ""
        raise DataError(f"frames folder {folder} holds files edgecls did not write: {', '.join(foreign[:3])}{more}; "
                        "replay a folder written by 'edgecls run --save-frames' (move other files out)")
    try:
        session = json.loads((folder / SESSION_FILE).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise DataError(f"frames folder {folder} has no readable {SESSION_FILE} ({type(err).__name__}): "
                        "it was not written by 'edgecls run --save-frames'") from err
    if not isinstance(session, dict) or session.get("format") != FRAMES_FORMAT or not isinstance(session.get("labels"), list):
        raise DataError(f"{folder / SESSION_FILE} is not an edgecls frames session file")
    stems = sorted({n.rsplit(".", 1)[0] for n in names if FRAME_NAME.match(n)})
    complete = [s for s in stems if (folder / f"{s}.json").is_file()]
    incomplete = tuple(s for s in stems if s not in complete)
    if not complete:
        raise DataError(f"frames folder {folder} has no saved frames: run longer, or lower --save-every")
    records, tensors = [], []
    for stem in complete:
        try:
            record = json.loads((folder / f"{stem}.json").read_text(encoding="utf-8"))
            tensor = np.load(folder / record["tensor"], allow_pickle=False)
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise DataError(f"frame {folder / stem} is corrupt ({type(err).__name__}: {err}): remove it and replay again") from err
        if not (folder / str(record.get("image"))).is_file():
            raise DataError(f"frame {folder / stem} lacks its image {record.get('image')}: remove it and replay again")
        records.append(record)
        tensors.append(tensor)
    sizes = Counter(tuple(r.get("image_size") or ()) for r in records)
    if len(sizes) > 1:
        listed = ", ".join(f"{'x'.join(map(str, s))} ({n} frame{'s' if n != 1 else ''})" for s, n in sizes.most_common())
        raise DataError(f"frames folder {folder} mixes image sizes: {listed}; replay one camera setting per folder")
    shapes = Counter((*t.shape, str(t.dtype)) for t in tensors)
    if len(shapes) > 1 or tensors[0].shape != (size, size, 3) or tensors[0].dtype != np.uint8:
        got = ", ".join(f"{'x'.join(map(str, s[:-1]))} {s[-1]}" for s in shapes)
        raise DataError(f"frames folder {folder} holds tensors of {got}; this run's model takes {size}x{size}x3 uint8: "
                        "replay frames recorded with this run's model")
    return SavedFrames(folder, session, tuple(records), np.stack(tensors), incomplete)


@dataclass(frozen=True)
class ClassAgreement:
    label: str
    frames: int
    agreement: float
    mean_abs_prob_diff: float


@dataclass(frozen=True)
class InputStatistic:
    """One input statistic: training and field summaries (text), their distance and its limit."""

    name: str
    train: str
    field: str
    distance: float
    limit: float

    @property
    def ok(self) -> bool:
        return self.distance <= self.limit


@dataclass(frozen=True)
class ReplayReport:
    run_dir: str
    frames: str
    count: int
    image_size: str
    incomplete: tuple[str, ...]
    tensors_reproduced: int
    tensor_mismatches: tuple[str, ...]
    agreement: float
    mean_abs_prob_diff: float
    min_agreement: float
    per_class: tuple[ClassAgreement, ...]
    train_dir: str
    train_count: int
    statistics: tuple[InputStatistic, ...]
    scenes: int = 0
    smoothed: bool = False
    disagreements: tuple[str, ...] = field(default_factory=tuple)

    @property
    def allowed_flips(self) -> int:
        return max(MIN_FLIPS_TO_FAIL - 1, int(np.floor(self.count * (1 - self.min_agreement) + 1e-9)))

    @property
    def agreement_ok(self) -> bool:
        return len(self.disagreements) <= self.allowed_flips

    @property
    def quantization_ok(self) -> bool:
        return self.agreement_ok and not self.tensor_mismatches

    @property
    def domain_ok(self) -> bool:
        return all(s.ok for s in self.statistics)

    @property
    def passed(self) -> bool:
        return self.quantization_ok and self.domain_ok

    @property
    def quantization_verdict(self) -> str:
        if self.tensor_mismatches:
            return (f"FAIL: {len(self.tensor_mismatches)} stored tensor(s) differ from re-preprocessing their originals "
                    f"(first {self.tensor_mismatches[0]}): the device's preprocessing is not the host's")
        note = " (device probabilities were smoothed over frames)" if self.smoothed else ""
        flips = len(self.disagreements)
        if self.agreement_ok:
            return (f"ok: the device agrees with the float model on {self.agreement:.2%} of {self.count} field frames "
                    f"({flips} flip(s), at most {self.allowed_flips} allowed){note}")
        return (f"FAIL: the device agrees with the float model on only {self.agreement:.2%} of {self.count} field frames "
                f"({flips} flips, at most {self.allowed_flips} allowed: {self.min_agreement:.0%}){note}: "
                "the int8 model loses decisions on real inputs; "
                "recalibrate with field-like images ('edgecls convert --data')")

    @property
    def domain_verdict(self) -> str:
        bad = [s.name for s in self.statistics if not s.ok]
        if not bad:
            return "ok: the field frames' brightness and colour match the training data"
        return (f"DRIFT in {', '.join(bad)}: the camera sees differently from the training data; "
                "collect field images and retrain (conversion is not the cause)")

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.update(passed=self.passed, allowed_flips=self.allowed_flips, quantization_ok=self.quantization_ok, domain_ok=self.domain_ok,
                   quantization_verdict=self.quantization_verdict, domain_verdict=self.domain_verdict)
        for s, d in zip(self.statistics, out["statistics"], strict=True):
            d["ok"] = s.ok
        return out


def _counts(images: np.ndarray) -> np.ndarray:
    """Per image, per channel, HIST_BINS pixel counts: (N, 3, HIST_BINS)."""
    offsets = np.arange(3) * HIST_BINS
    return np.stack([np.bincount(((im.reshape(-1, 3).astype(np.intp) * HIST_BINS) // 256 + offsets).ravel(),
                                 minlength=3 * HIST_BINS).reshape(3, HIST_BINS) for im in images])


def _hist(counts: np.ndarray) -> np.ndarray:
    h = counts.astype(np.float64)
    return h / max(h.sum(), 1.0)


def js_distance(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen-Shannon distance, base 2: 0 for equal histograms, 1 for disjoint ones."""
    m = (p + q) / 2

    def kl(a: np.ndarray) -> float:
        mask = a > 0
        return float(np.sum(a[mask] * np.log2(a[mask] / m[mask])))

    return float(np.sqrt(max(0.0, (kl(p) + kl(q)) / 2)))


def _luma(x: np.ndarray) -> np.ndarray:
    return (x.reshape(len(x), -1, 3) @ LUMA).mean(axis=1)


def _distances(counts_t: np.ndarray, luma_t: np.ndarray, counts_f: np.ndarray, luma_f: np.ndarray) -> np.ndarray:
    """[brightness shift in training sds, JS distance of red, green, blue histograms]; counts
    are summed per-image channel histograms (3, HIST_BINS)."""
    sd = float(luma_t.std()) or 1.0
    out = [abs(float(luma_f.mean() - luma_t.mean())) / sd]
    out += [js_distance(_hist(counts_t[c]), _hist(counts_f[c])) for c in range(3)]
    return np.array(out)


def count_scenes(frames: np.ndarray) -> int:
    """Distinct scenes in saved order: a new one wherever consecutive tensors differ by SCENE_CUT or more."""
    if len(frames) < 2:
        return len(frames)
    steps = np.abs(np.diff(frames.astype(np.int16), axis=0)).reshape(len(frames) - 1, -1).mean(axis=1)
    return 1 + int(np.sum(steps >= SCENE_CUT))


def input_statistics(train: np.ndarray, frames: np.ndarray, scenes: int, seed: int = 0) -> tuple[InputStatistic, ...]:
    """Brightness shift and per-channel histogram distances of model inputs (N, S, S, 3) uint8,
    each with a limit that chance alone (random training subsets of ``scenes`` images) stays under."""
    luma_t, luma_f = _luma(train), _luma(frames)
    per_image = _counts(train)
    all_t = per_image.sum(axis=0)
    got = _distances(all_t, luma_t, _counts(frames).sum(axis=0), luma_f)
    rng = np.random.default_rng(seed)
    n = max(1, min(scenes, len(train)))
    draws = [rng.choice(len(train), n, replace=False) for _ in range(NULL_DRAWS)]
    null = np.array([_distances(all_t, luma_t, per_image[i].sum(axis=0), luma_t[i]) for i in draws])
    limits = np.maximum([MIN_BRIGHTNESS_LIMIT] + [MIN_HISTOGRAM_LIMIT] * 3, np.quantile(null, NULL_QUANTILE, axis=0))
    stats = [InputStatistic("brightness shift (training sds)", f"{luma_t.mean():.1f} ± {luma_t.std():.1f}",
                            f"{luma_f.mean():.1f} ± {luma_f.std():.1f}", float(got[0]), float(limits[0]))]
    for c, name in enumerate(("red", "green", "blue")):
        stats.append(InputStatistic(f"{name} histogram (JS distance)", f"mean {train[..., c].mean():.1f}",
                                    f"mean {frames[..., c].mean():.1f}", float(got[c + 1]), float(limits[c + 1])))
    return tuple(stats)


def training_inputs(spec: ModelSpec, train_data: Path | None) -> tuple[np.ndarray, str]:
    where = Path(train_data) if train_data is not None else (Path(spec.train_dir) if spec.train_dir else None)
    if where is None or not where.is_dir():
        raise DataError(f"the run's training folder {where} is not here: pass --train-data DIR for the input statistics")
    scan = scan_folder(where, what="training folder")
    items = scan.items()
    y = np.array([c for _, c in items])
    pick = stratified_sample(y, TRAIN_SAMPLE, seed=0) if len(items) > TRAIN_SAMPLE else np.arange(len(items))
    loaded = load_items([items[i] for i in pick])
    if len(loaded.y) == 0:
        raise DataError(f"no image of the training folder {where} could be decoded: pass --train-data DIR")
    return loaded.x, str(where)


def _reproduce(saved: SavedFrames, size: int) -> tuple[str, ...]:
    bad = []
    for record, tensor in zip(saved.records, saved.tensors, strict=True):
        image = read_image(saved.folder / record["image"])
        if image is None or not np.array_equal(to_model_input(image, "bgr", size), tensor):
            bad.append(str(record["image"]))
    return tuple(bad)


def field_replay(run_dir: Path, frames: Path, *, train_data: Path | None = None) -> ReplayReport:
    """Score saved frames with the float model; compare with the device and with the training data."""
    spec = load_spec(Path(run_dir) / SPEC_FILE)
    saved = load_frames(frames, spec.input_size)
    labels = tuple(str(x) for x in saved.session["labels"])
    if labels != spec.labels:
        raise DataError(f"the frames were classified with labels {', '.join(labels)} but run {run_dir} has "
                        f"{', '.join(spec.labels)}: replay against the run the device's model was converted from")
    device_probs = np.array([r["probabilities"] for r in saved.records], dtype=np.float64)
    if device_probs.shape != (len(saved.records), len(labels)):
        raise DataError(f"frames in {frames} record {device_probs.shape[-1]} probabilities for {len(labels)} labels: corrupt frames")
    train_x, train_dir = training_inputs(spec, train_data)
    from .export import import_tensorflow_quietly

    import_tensorflow_quietly()  # only now: every bad input above is refused in about a second
    model = load_keras_model(run_dir)
    float_probs = keras_probabilities(model, saved.tensors, spec.head)
    f, d = top1(float_probs), top1(device_probs)
    diff = np.abs(float_probs - device_probs).max(axis=1)
    per_class = tuple(
        ClassAgreement(label, int(np.sum(f == c)), float(np.mean(d[f == c] == c)) if np.any(f == c) else float("nan"),
                       float(diff[f == c].mean()) if np.any(f == c) else float("nan"))
        for c, label in enumerate(labels))
    sizes = saved.records[0].get("image_size") or []
    scenes = count_scenes(saved.tensors)
    smoothed = any(int(r.get("smooth", 1) or 1) > 1 for r in saved.session.get("runs") or [])
    return ReplayReport(
        run_dir=str(run_dir), frames=str(frames), count=len(saved.records), image_size="x".join(map(str, sizes)),
        incomplete=saved.incomplete, tensors_reproduced=len(saved.records) - len(mismatch := _reproduce(saved, spec.input_size)),
        tensor_mismatches=mismatch, agreement=float(np.mean(f == d)), mean_abs_prob_diff=float(diff.mean()),
        min_agreement=MIN_FIELD_AGREEMENT, per_class=per_class, train_dir=train_dir, train_count=len(train_x),
        statistics=input_statistics(train_x, saved.tensors, scenes), scenes=scenes, smoothed=smoothed,
        disagreements=tuple(f"{r['image']}: device {labels[d[i]]}, float {labels[f[i]]}"
                            for i, r in enumerate(saved.records) if d[i] != f[i]),
    )
