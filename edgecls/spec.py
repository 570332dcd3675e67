"""The model's spec: everything a consumer needs to feed the model, carried with the model.

A run folder keeps it as ``spec.json``; conversion embeds the same JSON (plus the
quantization it produced) inside each ``.tflite``. The device reads it from there and
takes no normalisation flags, so it cannot restate the training preprocessing wrongly.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from edgecls.errors import SpecError
from edgecls.fsutil import atomic_write_json
from edgecls.preprocess import COLOUR_ORDERS, INPUT_SIZE, RESIZE_METHOD

SPEC_VERSION = 1
HEADS = ("sigmoid", "softmax")


@dataclass(frozen=True)
class ModelSpec:
    """What the model expects and produces.

    labels: class names; index i is output i (softmax) or, for a sigmoid head, labels[1]
        is the positive class whose probability the single output unit gives.
    input_size: side of the square input, in pixels.
    colour_order: channel order of the model input ("rgb").
    resize: the resize method of :mod:`edgecls.preprocess` the model was trained with.
    input_range: raw pixel values 0..255; the 1/255 rescaling is inside the model.
    head: "sigmoid" (one unit, two classes) or "softmax" (one unit per class).
    train_dir: the training folder, for later calibration and field checks.
    quantization: filled in by conversion: mode, input and output tensor quantization.
    """

    labels: tuple[str, ...]
    head: str
    input_size: int = INPUT_SIZE
    colour_order: str = "rgb"
    resize: str = RESIZE_METHOD
    input_range: tuple[int, int] = (0, 255)
    train_dir: str | None = None
    quantization: dict[str, Any] = field(default_factory=dict)
    version: int = SPEC_VERSION

    @property
    def num_outputs(self) -> int:
        return 1 if self.head == "sigmoid" else len(self.labels)

    def with_quantization(self, quantization: dict[str, Any]) -> ModelSpec:
        return replace(self, quantization=dict(quantization))

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["labels"] = list(self.labels)
        data["input_range"] = list(self.input_range)
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "spec") -> ModelSpec:
        try:
            spec = cls(
                labels=tuple(str(x) for x in data["labels"]),
                head=str(data["head"]),
                input_size=int(data.get("input_size", INPUT_SIZE)),
                colour_order=str(data.get("colour_order", "rgb")),
                resize=str(data.get("resize", RESIZE_METHOD)),
                input_range=tuple(data.get("input_range", (0, 255))),  # type: ignore[arg-type]
                train_dir=data.get("train_dir"),
                quantization=dict(data.get("quantization") or {}),
                version=int(data.get("version", SPEC_VERSION)),
            )
        except (KeyError, TypeError, ValueError) as err:
            raise SpecError(f"{source} is not an edgecls model spec ({err!r}): re-run 'edgecls train' or 'edgecls convert'") from err
        spec.validate(source)
        return spec

    @classmethod
    def from_json(cls, text: str, source: str = "spec") -> ModelSpec:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise SpecError(f"{source} is not valid JSON ({err.msg} at line {err.lineno})") from err
        if not isinstance(data, dict):
            raise SpecError(f"{source} is not an edgecls model spec: expected a JSON object")
        return cls.from_dict(data, source)

    def validate(self, source: str = "spec") -> None:
        if self.version > SPEC_VERSION:
            raise SpecError(f"{source} has spec version {self.version}; this edgecls reads up to {SPEC_VERSION}: upgrade edgecls")
        if self.head not in HEADS:
            raise SpecError(f"{source}: head must be one of {HEADS}, got {self.head!r}")
        if len(self.labels) < 2:
            raise SpecError(f"{source}: a classifier needs at least 2 labels, got {len(self.labels)}")
        if self.head == "sigmoid" and len(self.labels) != 2:
            raise SpecError(f"{source}: a sigmoid head has exactly 2 labels, got {len(self.labels)}")
        if self.colour_order not in COLOUR_ORDERS:
            raise SpecError(f"{source}: unknown colour order {self.colour_order!r}")
        if self.resize != RESIZE_METHOD:
            raise SpecError(
                f"{source}: resize method {self.resize!r} is not this edgecls's {RESIZE_METHOD!r}: "
                "train it again with this edgecls, or run it with the edgecls it was trained with"
            )


def load_spec(path: Path) -> ModelSpec:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as err:
        raise SpecError(f"cannot read model spec {path}: {err.strerror}") from err
    return ModelSpec.from_json(text, str(path))


def save_spec(path: Path, spec: ModelSpec) -> None:
    atomic_write_json(path, spec.to_dict())
