"""The article's CNN, and loading a trained one. Host only (imports Keras inside functions)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from edgecls.errors import MissingDependencyError, ModelError
from edgecls.preprocess import INPUT_SIZE

MODEL_FILE = "model.keras"
SPEC_FILE = "spec.json"
LABELS_FILE = "labels.txt"


def import_keras() -> Any:
    """Import Keras (with TensorFlow as its backend) or say which extra to install."""
    try:
        import keras
        import tensorflow  # noqa: F401  (the backend must be TensorFlow for conversion)
    except ImportError as err:
        raise MissingDependencyError("tensorflow", "host", "training and conversion") from err
    return keras


def import_tensorflow_quietly() -> None:
    """Import Keras and TensorFlow with their load-time C++ log lines (oneDNN, absl) silenced.

    Those lines ignore TF_CPP_MIN_LOG_LEVEL and would break the one-line error contract.
    """
    if "tensorflow" in sys.modules:
        return
    from edgecls.quiet import captured

    with captured():
        import_keras()


def build_model(
    num_classes: int, size: int = INPUT_SIZE, *, batch_size: int | None = None, rescale: bool = True
) -> Any:
    """The article's CNN: 64x64x3 -> Conv(5) -> Pool -> Conv(32) -> Pool -> Dense(128) -> head.

    Rescaling(1/255) is the first layer so the model takes raw 0..255 RGB and the
    exported graph carries its own normalisation. Two classes get one sigmoid unit, more
    get softmax (the article's relu output under binary cross-entropy was a bug).
    ``batch_size=1`` builds the static-shape twin used for TFLite export; ``rescale=False``
    drops the Rescaling layer (only for the benchmark baseline, whose generator rescales).
    """
    keras = import_keras()
    layers = keras.layers
    head = (
        layers.Dense(1, activation="sigmoid", name="head")
        if num_classes == 2
        else layers.Dense(num_classes, activation="softmax", name="head")
    )
    first = [layers.Rescaling(1.0 / 255, name="rescale")] if rescale else []
    return keras.Sequential(
        [
            keras.Input(shape=(size, size, 3), batch_size=batch_size, name="image"),
            *first,
            layers.Conv2D(5, (3, 3), activation="relu", name="conv1"),
            layers.MaxPooling2D(pool_size=(2, 2), strides=2, name="pool1"),
            layers.Conv2D(32, (3, 3), activation="relu", name="conv2"),
            layers.MaxPooling2D(pool_size=(2, 2), strides=2, name="pool2"),
            layers.Flatten(name="flatten"),
            layers.Dense(128, activation="relu", name="dense"),
            head,
        ],
        name="edgecls_cnn",
    )


def load_keras_model(run_dir: Path) -> Any:
    """Load RUN_DIR/model.keras, or say what is wrong with it."""
    path = Path(run_dir) / MODEL_FILE
    if not Path(run_dir).is_dir():
        raise ModelError(f"run folder {run_dir} does not exist: train one with 'edgecls train DATA --out {run_dir}'")
    if not path.is_file():
        raise ModelError(f"{run_dir} has no {MODEL_FILE}: it is not an edgecls run folder; train with 'edgecls train'")
    keras = import_keras()
    try:
        return keras.models.load_model(path, compile=False)
    except Exception as err:  # Keras raises many types for a corrupt archive
        raise ModelError(f"{path} is not a readable Keras model ({type(err).__name__}): re-run 'edgecls train'") from err
