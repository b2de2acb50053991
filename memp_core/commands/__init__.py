"""`memp` subcommands, one module per area; see memp_core.cli."""
