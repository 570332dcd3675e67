"""The options of ``edgecls run``, as one frozen value the loop and the sink factories read."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

#: ``--capture-rule`` and ``--capture-rate`` defaults (:mod:`.capture_rules` parses them).
#: Here, not there: backends import this module, and it must load without OpenCV.
DEFAULT_RULES = ("low-score:0.6", "margin:0.2")
DEFAULT_RATE = "10/min,200/hour,2000/day"
#: The (width, height) asked of a camera unless --capture-size says otherwise.
DEFAULT_CAPTURE_SIZE = (640, 480)
#: With --save-frames: one frame in ten (3 a second from a 30 fps camera).
DEFAULT_SAVE_EVERY = 10
#: The Edge TPU used with --edgetpu unless --device names another ("pci:0", "usb:1", ...).
EDGETPU_DEVICE = "usb:0"


@dataclass(frozen=True)
class RunOptions:
    """model: the .tflite. source: camera index, /dev/videoN, file, folder, URL, GStreamer
    pipeline or "picamera2". headless: no window even where a display exists.
    max_frames: stop after this many classified frames (None: until the source ends or a signal).
    jsonl: write one JSON object per classified frame here, flushed line by line.
    top_k/threshold/smooth: see :class:`.classify.PostOptions`. num_threads: interpreter
    threads. edgetpu/device: run on the Coral Edge TPU at ``device``. labels: a labels
    file that overrides the model's. stats_every_s: how often to log fps/dropped/reconnects.
    quiet: do not print each result (stats lines still appear).
    realtime: play a video file at its recorded frame rate (a folder at 30 fps), as a
    camera would deliver it, instead of as fast as possible.
    save_frames: keep every ``save_every``-th frame here (original PNG, model input .npy,
    prediction .json) for ``edgecls field replay`` (None: off).
    capture_size: (width, height) asked of a camera or picamera2; smaller frames cost less
    to transfer, decode and resize (files and folders are read at their own size).
    decode_threads: FFmpeg threads decoding a video file or stream (0: FFmpeg picks, one per
    core; see :class:`.sources.SourceOptions` for why 1).
    serve: ``[HOST:]PORT`` for the browser preview, /status and /metrics (None: off; the host
    defaults to 127.0.0.1). serve_token: required on every route when set (else the
    ``EDGECLS_SERVE_TOKEN`` environment variable, if set).

    input_mean/input_std: the model's input is ``(pixel - mean) / std`` (pycoral's
    convention), for a foreign model whose metadata says nothing (None: from the model).
    mqtt: broker URL (mqtt://HOST[:PORT] or mqtts://) for results, health and commands (None:
    off); the other ``mqtt_*`` fields, device_id, ha_discovery_prefix and bundle belong to it
    (see ``device/mqtt.py``). Credentials are a file or environment variables, never a value here.
    store: serve the current model of this model store (``--model`` is then not needed;
    see :mod:`.store`). trust: public keys a package must be signed by. inbox: a folder
    watched for update packages (:mod:`.update`). probation_s: seconds a new model is
    watched before it is confirmed.
    capture: keep the frames the ``capture_rules`` catch here, at most ``capture_rate``, the
    folder held under ``capture_quota_mb`` (None: off; see :mod:`.capture`).
    drift: watch input and output statistics against the artifact's baseline (:mod:`.drift`).

    A new sink adds its option here, in ``device/cli.py`` and one entry in ``sinks.SINKS``.
    """

    model: Path
    source: str = "0"
    headless: bool = False
    max_frames: int | None = None
    jsonl: Path | None = None
    top_k: int = 1
    threshold: float = 0.0
    smooth: int = 1
    num_threads: int = 1
    edgetpu: bool = False
    device: str = EDGETPU_DEVICE
    labels: Path | None = None
    stats_every_s: float = 5.0
    quiet: bool = False
    realtime: bool = False
    save_frames: Path | None = None
    save_every: int = DEFAULT_SAVE_EVERY
    serve: str | None = None
    serve_token: str | None = None
    capture_size: tuple[int, int] = DEFAULT_CAPTURE_SIZE
    decode_threads: int = 1
    input_mean: float | None = None
    input_std: float | None = None
    #: Rotate --jsonl before it passes this many MiB (0: never); keep this many rotated files.
    jsonl_max_mb: float = 0.0
    jsonl_keep: int = 10
    mqtt: str | None = None
    device_id: str | None = None
    mqtt_prefix: str = "edgecls"
    mqtt_credentials: Path | None = None
    mqtt_ca: Path | None = None
    mqtt_cert: Path | None = None
    mqtt_key: Path | None = None
    mqtt_spool: Path | None = None
    mqtt_state_every_s: float = 30.0
    ha_discovery_prefix: str = "homeassistant"
    bundle: Path | None = None
    store: Path | None = None
    trust: tuple[Path, ...] = ()
    inbox: Path | None = None
    probation_s: float = 30.0
    capture: Path | None = None
    capture_rules: tuple[str, ...] = DEFAULT_RULES
    capture_rate: str = DEFAULT_RATE
    capture_quota_mb: float = 200.0
    drift: bool = True
