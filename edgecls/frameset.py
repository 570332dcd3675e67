"""The saved-frames layout: what ``edgecls run --save-frames`` writes and ``field replay`` reads.

A format both sides read lives in the core, next to the bundle format
(:mod:`edgecls.bundle`): the device writes it (:mod:`edgecls.device.frames`), the host reads
it (:mod:`edgecls.convert.field_replay`), and neither imports the other.

A frames folder holds ``session.json`` (format, version, model sha256, labels, runs) and,
per saved frame, ``<run>-<frame>.png`` (the original), ``.npy`` (the model input) and
``.json`` (the device's prediction), the ``.json`` written last.
"""

from __future__ import annotations

import re

FRAMES_FORMAT = "edgecls-field-frames"
FRAMES_VERSION = 1
SESSION_FILE = "session.json"
#: ``<run id>-<frame>.<ext>``: the run id is the UTC start time, so runs never collide.
FRAME_NAME = re.compile(r"^(\d{8}T\d{6}(?:\.\d+)?)-(\d{6,})\.(png|npy|json)$")
