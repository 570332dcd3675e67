"""The device runtime: camera frames -> labels on a Pi or Coral, without TensorFlow.

The live loop is source -> preprocess -> backend -> postprocess -> sinks:

- :mod:`.sources`  frame sources (camera, file, folder, stream URL, GStreamer, picamera2),
  a registry keyed by kind; :mod:`.reader` the latest-frame reader and reconnect watchdog.
- :mod:`.backends` interpreter backends (LiteRT CPU, Edge TPU), a registry keyed by name;
  :mod:`.litert` is the one place that imports an interpreter package.
- :mod:`.model`    what the model file says (labels, spec, head) and the checks against it.
- :mod:`.classify` one frame -> tensor -> prediction, with per-stage timings.
- :mod:`.sinks`    where results go (console, JSON lines, window, stats), a registry.
- :mod:`.loop`     the loop itself, stop signals and the run summary.

Nothing here imports TensorFlow or Keras (ruff's banned-api enforces it; a test checks
``sys.modules`` in a subprocess).
"""
