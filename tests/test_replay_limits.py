"""Field replay's domain-drift limits: chance alone fails about one replay in a hundred.

Four statistics are judged (brightness shift, the red, green and blue histograms), each
against a quantile of what random training subsets of the field's size score. With each
at its own 99th percentile, 3.8 % of random subsets failed one of them: the demo's own
10-scene video failed once for nothing. No TensorFlow here: the statistics are numpy.
"""

from __future__ import annotations

import numpy as np

from edgecls.convert.field_replay import HIST_BINS, _counts, _distances, _luma, input_statistics
from edgecls.demo_data import render
from edgecls.preprocess import to_model_input


def _inputs(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.stack([to_model_input(render(("circle", "cross")[i % 2], rng), "bgr") for i in range(n)])


def test_summed_per_image_counts_are_the_pooled_histogram() -> None:
    x = np.random.default_rng(0).integers(0, 256, (5, 64, 64, 3), dtype=np.uint8)
    for c in range(3):
        pooled = np.bincount((x[..., c].reshape(-1).astype(np.int64) * HIST_BINS) // 256, minlength=HIST_BINS)
        np.testing.assert_array_equal(_counts(x).sum(axis=0)[c], pooled)


def test_chance_alone_rarely_fails_a_replay_and_a_darker_camera_always_does() -> None:
    train = _inputs(600, seed=1)
    fresh = _inputs(300, seed=2)  # the same world, other pictures: what a field without drift gives
    rng = np.random.default_rng(3)
    scenes = 10
    draws = 500
    limits = np.array([s.limit for s in input_statistics(train, fresh[:scenes], scenes)])
    counts_t, luma_t = _counts(train).sum(axis=0), _luma(train)
    counts_f, luma_f = _counts(fresh), _luma(fresh)
    failed = 0
    for _ in range(draws):  # what input_statistics computes for a field of these scenes, without its null
        pick = rng.choice(len(fresh), scenes, replace=False)
        failed += bool((_distances(counts_t, luma_t, counts_f[pick].sum(axis=0), luma_f[pick]) > limits).any())
    print(f"{failed} of {draws} drift-free fields of {scenes} scenes failed; limits {np.round(limits, 3).tolist()}")
    assert failed <= 0.03 * draws, "chance alone should fail about 1 % of replays"
    dark = (fresh[:scenes] * 0.45).astype(np.uint8)
    stats = input_statistics(train, dark, scenes)
    assert not stats[0].ok and all(not s.ok for s in stats[1:]), [(s.name, s.distance, s.limit) for s in stats]
