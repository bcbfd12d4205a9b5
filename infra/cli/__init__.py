"""The ``sovml`` command: one thin module per command group over the library code."""
