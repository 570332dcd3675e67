"""edgecls: a folder of labelled images to a live classifier on a Pi or Coral, with parity proofs.

Layout of the one import namespace:

- ``edgecls`` (this package): the core shared by host and device (model spec, labels,
  preprocessing, errors; numpy and OpenCV only) and the host-side training.
- ``edgecls.convert`` (``convert/`` in the repository): TFLite export, quantization, parity.
- ``edgecls.device`` (``device/`` in the repository): the Pi runtime. Never imports TensorFlow.
"""

from __future__ import annotations

__version__ = "0.1.0"
