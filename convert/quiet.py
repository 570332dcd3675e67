"""Moved to :mod:`edgecls.quiet` (host and device share one capture helper); kept as a name."""

from edgecls.quiet import Captured as Captured
from edgecls.quiet import captured as captured
