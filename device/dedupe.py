"""Near-duplicate suppression for ``--capture`` and ``edgecls collect``.

A frame's fingerprint is its 64x64 model input shrunk to 8x8 block means per channel
(192 numbers). Two frames are near-duplicates when the mean absolute difference of their
fingerprints is under ``DUPLICATE_LEVELS`` grey levels. Why this and not a perceptual
hash (dHash, pHash): a hash of single-pixel gradients flips bits on the flat parts of a
frame under sensor noise, so a camera staring at one scene would yield "new" hashes every
frame; a block mean averages 64 pixels, which divides the noise by 8, and keeps colour,
which a luma hash drops (a colour cast is a new scene for a classifier). It works on the
tensor the model saw, so it is cheap (about 10 us) and needs nothing beyond numpy.
"""

from __future__ import annotations

from collections import deque

import numpy as np

#: Mean |difference| of 8x8 block means (0..255) under which two frames are one scene:
#: the built-in demo video's sensor noise alone moves a fingerprint by about 1 level and
#: its slow camera sway by 2 to 4; a new scene moves it by 20 or more.
DUPLICATE_LEVELS = 6.0
#: Fingerprints remembered: a scene seen again after this many other captures counts as new.
RECENT = 64
GRID = 8


def fingerprint(tensor: np.ndarray) -> np.ndarray:
    """8x8x3 block means (float32) of an SxSx3 uint8 model input (S divisible by 8)."""
    s = tensor.shape[0] // GRID
    return tensor[: s * GRID, : s * GRID].reshape(GRID, s, GRID, s, -1).mean(axis=(1, 3), dtype=np.float32)


class Deduper:
    """The fingerprints of recent keeps; ``seen`` says whether a frame repeats one."""

    def __init__(self, levels: float = DUPLICATE_LEVELS, recent: int = RECENT) -> None:
        self.levels = levels
        self._recent: deque[np.ndarray] = deque(maxlen=recent)
        self.suppressed = 0

    def seen(self, fp: np.ndarray) -> bool:
        """True (and counted) when ``fp`` is a near-duplicate of a remembered keep."""
        if self._recent:
            stack = np.stack(self._recent)
            if float(np.abs(stack - fp).mean(axis=(1, 2, 3)).min()) < self.levels:
                self.suppressed += 1
                return True
        return False

    def remember(self, fp: np.ndarray) -> None:
        """Call when the frame is kept (after the rate caps let it through)."""
        self._recent.append(fp)
