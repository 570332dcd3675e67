"""``--capture-rule``: which frames the device keeps for review, and how many.

Rules (repeat the option, or join them with commas in one value; a frame is kept when
any rule catches it, and the first that does is recorded):

    low-score:S   top-1 score under S (0 < S <= 1): the model is unsure
    margin:M      top-1 minus top-2 under M (0 < M <= 1): two labels compete
    label:NAME    the predicted label is NAME (one of the model's labels, or "unknown")
    flip          the label differs from the smoothed label of the last FLIP_WINDOW frames
    every:N       every N-th frame (a random-like sample to compare the others with)

Rate caps (``--capture-rate``, e.g. ``10/min,100/hour,1000/day``) bound how many frames
any rule may keep per sliding minute, hour and day.
"""

from __future__ import annotations

import time
from collections import Counter, deque
from dataclasses import dataclass

from edgecls.errors import DataError

from .options import DEFAULT_RATE as DEFAULT_RATE
from .options import DEFAULT_RULES as DEFAULT_RULES
from .results import UNKNOWN, Prediction

RULE_FORMS = "low-score:S, margin:M (0 < S, M <= 1), label:NAME, flip, every:N (N >= 1)"
RATE_FORMS = "N/min, N/hour, N/day, comma-separated (e.g. 10/min,100/hour,1000/day)"
#: Frames whose majority label a "flip" is judged against; a flip needs a settled majority.
FLIP_WINDOW = 8
FLIP_MAJORITY = 0.75
PERIODS = {"min": 60.0, "minute": 60.0, "hour": 3600.0, "h": 3600.0, "day": 86400.0, "d": 86400.0}


@dataclass(frozen=True)
class Rule:
    kind: str
    value: float = 0.0
    label: str = ""

    def __str__(self) -> str:
        if self.kind == "flip":
            return "flip"
        if self.kind == "label":
            return f"label:{self.label}"
        if self.kind == "every":
            return f"every:{int(self.value)}"
        return f"{self.kind}:{self.value:g}"


def _bad(text: str, why: str) -> DataError:
    return DataError(f"bad --capture-rule {text!r}: {why}; accepted forms: {RULE_FORMS}")


def parse_rules(specs: tuple[str, ...] | list[str], labels: tuple[str, ...]) -> tuple[Rule, ...]:
    """Parse every rule, refusing the first that does not parse, in one line."""
    rules: list[Rule] = []
    for spec in specs:
        for text in (t.strip() for t in spec.split(",")):
            if not text:
                continue
            kind, _, arg = text.partition(":")
            kind = kind.strip().lower()
            if kind == "flip":
                if arg:
                    raise _bad(text, "flip takes no value")
                rules.append(Rule("flip"))
            elif kind == "label":
                if arg not in labels and arg != UNKNOWN:
                    raise _bad(text, f"{arg!r} is not one of the model's labels ({', '.join(labels)})")
                rules.append(Rule("label", label=arg))
            elif kind in ("low-score", "margin"):
                try:
                    value = float(arg)
                except ValueError:
                    raise _bad(text, f"{arg!r} is not a number") from None
                if not 0.0 < value <= 1.0:
                    raise _bad(text, f"{value:g} is not in (0, 1]")
                rules.append(Rule(kind, value))
            elif kind == "every":
                if not arg.isdigit() or int(arg) < 1:
                    raise _bad(text, f"{arg!r} is not a whole number >= 1")
                rules.append(Rule("every", float(int(arg))))
            else:
                raise _bad(text, f"unknown rule {kind!r}")
    if not rules:
        raise DataError(f"--capture-rule is empty: give at least one of {RULE_FORMS}")
    return tuple(rules)


def parse_rate(text: str) -> tuple[tuple[int, float], ...]:
    """``10/min,100/hour`` -> ((10, 60.0), (100, 3600.0)); refused in one line."""
    caps: list[tuple[int, float]] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        count, _, period = part.partition("/")
        if not count.strip().isdigit() or period.strip().lower() not in PERIODS:
            raise DataError(f"bad --capture-rate {part!r}: accepted forms: {RATE_FORMS}")
        caps.append((int(count), PERIODS[period.strip().lower()]))
    if not caps:
        raise DataError(f"--capture-rate is empty: accepted forms: {RATE_FORMS}")
    return tuple(caps)


class RuleSet:
    """Decides per frame which rule (if any) catches it. Runs on the loop thread: a few
    comparisons and a small deque per frame."""

    def __init__(self, rules: tuple[Rule, ...]) -> None:
        self.rules = rules
        self._recent: deque[str] = deque(maxlen=FLIP_WINDOW)

    def match(self, frame: int, prediction: Prediction) -> Rule | None:
        hit: Rule | None = None
        for rule in self.rules:
            if rule.kind == "low-score":
                ok = prediction.score < rule.value
            elif rule.kind == "margin":
                probs = sorted(prediction.probabilities, reverse=True)
                ok = len(probs) > 1 and probs[0] - probs[1] < rule.value
            elif rule.kind == "label":
                ok = prediction.label == rule.label
            elif rule.kind == "every":
                ok = frame % int(rule.value) == 0
            else:
                ok = self._flipped(prediction.label)
            if ok:
                hit = rule
                break
        self._recent.append(prediction.label)
        return hit

    def _flipped(self, label: str) -> bool:
        if len(self._recent) < FLIP_WINDOW:
            return False
        settled, count = Counter(self._recent).most_common(1)[0]
        return count >= FLIP_MAJORITY * FLIP_WINDOW and label != settled


class RateCaps:
    """Sliding-window caps: at most N captures in any minute, hour, day."""

    def __init__(self, caps: tuple[tuple[int, float], ...], clock: object = time.monotonic) -> None:
        self.caps = caps
        self._clock = clock
        longest = max((n for n, _ in caps), default=0)
        self._times: deque[float] = deque(maxlen=max(longest, 1))

    def full(self) -> bool:
        """True when any cap is reached now (checked before the costlier duplicate test)."""
        now = self._clock()  # type: ignore[operator]
        return any(count == 0 or (len(self._times) >= count and now - self._times[-count] < period)
                   for count, period in self.caps)

    def allow(self) -> bool:
        """Record a capture now if no cap is reached; say whether it was allowed."""
        if self.full():
            return False
        self._times.append(self._clock())  # type: ignore[operator]
        return True
