"""What every command shares: the typer apps, one-line errors with exit codes, logging and progress on stderr."""

from __future__ import annotations

import functools
import logging
import os
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import typer

from ragguard._quiet import quiet_third_party_logs
from ragguard._text import one_line
from ragguard._version import __version__
from ragguard.errors import RagGuardError

F = TypeVar("F", bound=Callable[..., Any])

app = typer.Typer(
    name="ragguard",
    help="Trustworthy RAG answers: retrieve, sample several answers, vote, flag contradictions.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
index_app = typer.Typer(help="Build, inspect and search knowledge indexes.", no_args_is_help=True)
app.add_typer(index_app, name="index")

VERDICT_COLOURS = {"consistent": "green", "inconsistent": "yellow", "contradiction": "red", "abstain": "blue"}


def _fail(message: str, code: int) -> None:
    typer.echo(f"ragguard: error: {one_line(message)}", err=True)  # one line, whatever ids or file names it quotes
    raise typer.Exit(code)


def quiet_stdout() -> None:
    """Point stdout at /dev/null after its reader went away, so Python's flush at exit does not fail again."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def handle_errors(func: F) -> F:
    """Turn ragguard errors (and surprises) into one stderr line and an exit code."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except typer.Exit:
            raise
        except BrokenPipeError:  # `ragguard check big.jsonl | head -1`: the reader has what it wanted, not an error
            quiet_stdout()
            raise typer.Exit(0) from None
        except RagGuardError as exc:
            if os.environ.get("RAGGUARD_DEBUG"):
                traceback.print_exc()
            _fail(str(exc), exc.exit_code)
        except KeyboardInterrupt:
            _fail("interrupted", 130)
        except Exception as exc:  # noqa: BLE001 - the CLI must never show a raw traceback
            if os.environ.get("RAGGUARD_DEBUG"):
                traceback.print_exc()
            first = (str(exc).splitlines() or [""])[0][:300]
            _fail(f"unexpected {type(exc).__name__}: {first} (rerun with RAGGUARD_DEBUG=1 and report it)", 3)

    return wrapper  # type: ignore[return-value]


class _CurrentStderr(logging.StreamHandler):  # type: ignore[type-arg]
    """A handler that writes to ``sys.stderr`` as it is now, not as it was when the handler was made (a test
    runner, or an embedding app, swaps it; the old stream may be closed by then)."""

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


def _setup_logging() -> None:
    """ragguard's own progress messages go to stderr, one line each."""
    logger = logging.getLogger("ragguard")
    if not logger.handlers:
        handler = _CurrentStderr()
        handler.setFormatter(logging.Formatter("ragguard: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG if os.environ.get("RAGGUARD_DEBUG") else logging.INFO)
    quiet_third_party_logs()


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"ragguard {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(False, "--version", callback=_version_callback, is_eager=True, help="Show the version."),
) -> None:
    """ragguard command line."""
    _setup_logging()


def _progress(message: str) -> None:
    typer.echo(message, err=True)


def guard_for(config: Path | None, index: Path | None) -> Any:
    """The pipeline, from :func:`ragguard.apps.cli.build_guard` (looked up per call: tests replace that seam)."""
    import ragguard.apps.cli

    return ragguard.apps.cli.build_guard(config, index)
