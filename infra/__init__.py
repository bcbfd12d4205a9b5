"""The sovereign-ml Pulumi program, its typed config and the ``sovml`` command."""
