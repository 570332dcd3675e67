"""``python -m edgecls`` runs the command line."""

from edgecls.cli import main

main()
