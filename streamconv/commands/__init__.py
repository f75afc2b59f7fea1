"""Subcommands of the ``streamconv`` program, one module each (see ``streamconv.cli``)."""
