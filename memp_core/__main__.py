"""``python -m memp_core`` runs the ``memp`` CLI."""

from memp_core.cli import main

main()
