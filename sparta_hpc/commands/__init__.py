"""The bodies of `sparta-hpc`'s subcommands, each called by cli.py after parsing."""
