"""``python -m ragguard.apps.cli``, the same as ``ragguard``."""

from ragguard.apps.cli import run

run()
