"""Masking secrets in what edgecls prints or logs: the one place that knows what a secret looks like.

A stream URL such as ``rtsp://admin:hunter2@cam.local/stream`` carries its credentials in
the text the user typed; that text reaches error messages, log lines, the JSONL
``run_start`` record and the preview page. Everything user-facing goes through
:func:`mask_secrets`, so a support paste or a journal never shows a password.
"""

from __future__ import annotations

import logging
import re

#: ``scheme://userinfo@`` (userinfo without '/', so a path containing '@' is left alone).
_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^/\s@]+)@")
#: Query parameters that carry a secret (``?token=...``, ``&password=...``).
_SECRET_QUERY = re.compile(r"(?P<key>[?&](?:token|password|passwd|pass|pwd|key|secret|auth)=)[^&\s#]+", re.IGNORECASE)
MASK = "***"


def mask_secrets(text: str) -> str:
    """``text`` with URL credentials and secret query values replaced by ``***``.

    ``rtsp://user:pw@host/x`` -> ``rtsp://***@host/x``: the user name goes too, since a
    guessed password is only half the work once the name is known.
    """
    text = _USERINFO.sub(lambda m: f"{m.group('scheme')}{MASK}@", str(text))
    return _SECRET_QUERY.sub(lambda m: f"{m.group('key')}{MASK}", text)


class MaskSecretsFilter(logging.Filter):
    """A logging filter that masks credentials in every record it passes (see :func:`mask_secrets`)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask_secrets(message)
        if masked != message:
            record.msg, record.args = masked, ()
        return True
