"""The ``ragguard`` command line: parse, call the library, print.

Answers go to stdout, progress and logs to stderr; ``--json`` prints exactly
one JSON object. Every error is one line on stderr with exit code 2 (usage)
or 3 (runtime); ``RAGGUARD_DEBUG=1`` shows the traceback as well.

One module per command group (:mod:`~ragguard.apps.cli.ask`: ask and check;
:mod:`~ragguard.apps.cli.audit`; :mod:`~ragguard.apps.cli.calibrate`; :mod:`~ragguard.apps.cli.index`;
:mod:`~ragguard.apps.cli.models`: doctor, tune and merge;
:mod:`~ragguard.apps.cli.serve`; :mod:`~ragguard.apps.cli.config`) over :mod:`~ragguard.apps.cli.common`.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from ragguard.apps.cli.common import app, handle_errors, index_app

# isort: off
# Importing a command module registers its commands; this order is the order of `ragguard --help`.
import ragguard.apps.cli.ask
import ragguard.apps.cli.audit
import ragguard.apps.cli.calibrate
import ragguard.apps.cli.models
import ragguard.apps.cli.serve
import ragguard.apps.cli.config
import ragguard.apps.cli.index  # noqa: F401
# isort: on

__all__ = ["app", "index_app", "handle_errors", "build_guard", "run"]


def build_guard(config: Path | None, index: Path | None) -> Any:
    """Construct the pipeline (a seam tests replace with fakes)."""
    from ragguard.pipeline import RagGuard

    return RagGuard.from_config(config, index=index)


def run() -> None:
    """Console-script entry point.

    ``ragguard audit diff OLD NEW`` (the documented spelling) is routed to the
    ``audit-diff`` command: typer cannot hold both ``audit FILE`` and a
    ``diff`` sub-command under one name.
    """
    import typer
    from typer.exceptions import TyperException

    if sys.argv[1:3] == ["audit", "diff"]:
        sys.argv[1:3] = ["audit-diff"]
    import signal

    def terminated(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt  # `kill` or a CI timeout: the same saved-work message and cleanup as Ctrl-C

    signal.signal(signal.SIGTERM, terminated)
    try:
        code = app(standalone_mode=False, prog_name="ragguard")
    except TyperException as exc:  # a bad flag, value or command: one line like every other error, not a box
        ctx, message = getattr(exc, "ctx", None), exc.format_message()  # type: ignore[attr-defined]
        where = ctx.command_path.replace("audit-diff", "audit diff") if ctx is not None else "ragguard"
        if message:  # (no message: a bare group name, whose help was just printed)
            print(f"ragguard: error: {message} (see '{where} --help')", file=sys.stderr)
        sys.exit(getattr(exc, "exit_code", 2))
    except typer.Abort:  # Ctrl-C while the parser itself reads input
        print("ragguard: error: interrupted", file=sys.stderr)
        sys.exit(130)
    except BrokenPipeError:  # e.g. `ragguard check big.jsonl | head -1`: the reader has what it wanted
        from ragguard.apps.cli.common import quiet_stdout

        quiet_stdout()
        return
    sys.exit(code if isinstance(code, int) else 0)
