"""sovereign-ml's custom checkov checks (IDs ``CKV_SOV_*``), loaded with ``--external-checks-dir``.

checkov runs every ``.py`` file here inside its own environment (``.venv-checkov``), and only
when this ``__init__.py`` exists. Nothing in this package may be imported from the main venv:
the check modules import checkov, which lives in ``.venv-checkov`` only.
"""
