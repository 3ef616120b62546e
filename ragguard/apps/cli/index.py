"""``ragguard index build|add|remove|info|search``."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import typer

from ragguard._io import json_line
from ragguard._text import counted, one_line
from ragguard.apps.cli.common import _fail, _progress, handle_errors, index_app


def _embedder_from(config: Path | None) -> Any:
    from ragguard.config import load_config
    from ragguard.generation.backends import build_embedder

    return build_embedder(load_config(config).embedder)


def _print_summary(summary: Any, as_json: bool, verb: str) -> None:
    for skipped in summary.skipped:
        _progress(f"skipped {one_line(skipped['path'])}: {skipped['reason']}")
    for warning in summary.warnings:
        _progress(f"warning: {warning}")
    if as_json:
        typer.echo(json_line(summary.to_dict()))
        return
    if not summary.written:
        typer.echo(f"{summary.out} is up to date: {counted(summary.chunks, 'chunk')} from "
                   f"{counted(summary.documents, 'document')}")
        return
    rate = f", {summary.embedded / summary.embed_seconds:.1f} chunks/s" if summary.embed_seconds > 0 else ""
    typer.echo(f"{verb} {summary.out}: {counted(summary.chunks, 'chunk')} from {counted(summary.documents, 'document')} in "
               f"{counted(summary.sources, 'file')} ({summary.dimension}-d, {summary.embedder}, {summary.index_type}) in "
               f"{summary.seconds:.1f}s; embedded {summary.embedded}{rate}, reused {summary.reused}; "
               f"{counted(len(summary.skipped), 'file')} skipped, {summary.excluded} excluded")
    for label, names in (("added", summary.added), ("changed", summary.changed), ("removed", summary.removed)):
        if names and verb != "wrote":
            typer.echo(f"  {label}: {', '.join(one_line(n) for n in names[:10])}{' …' if len(names) > 10 else ''}")


INCLUDE_HELP = "Only read files matching this glob (relative path or name; repeatable)."
EXCLUDE_HELP = "Leave out files matching this glob (relative path or name; repeatable)."


@index_app.command("build")
@handle_errors
def index_build(
    sources: list[Path] = typer.Argument(..., help="Folders or files: .md .txt .html .pdf .docx, FAQ .csv/.jsonl."),
    out: Path = typer.Option(..., "--out", help="Folder to write the index to (replaced atomically)."),
    config: Path | None = typer.Option(None, "--config", help="YAML config (the embedder section is used)."),
    index_type: str = typer.Option("auto", "--index-type", help="auto (by size), flat, hnsw, ivf or ivfpq."),
    include: list[str] = typer.Option([], "--include", help=INCLUDE_HELP),
    exclude: list[str] = typer.Option([], "--exclude", help=EXCLUDE_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print the build summary as JSON."),
) -> None:
    """Build an index from SOURCE folders (walked recursively) or files."""
    from ragguard.retrieval.index import build_index

    with _left_as_it_was(out):
        summary = build_index(sources, out, _embedder_from(config), progress=_chunk_bar(), index_type=index_type,
                              include=include, exclude=exclude)
    _print_summary(summary, as_json, "wrote")


@contextlib.contextmanager
def _left_as_it_was(folder: Path) -> Iterator[None]:
    """Ctrl-C (or SIGTERM) while an index is written: say that the folder is untouched, and why."""
    try:
        yield
    except KeyboardInterrupt:
        _fail(f"interrupted; {str(folder)!r} is as it was before this run (an index is written beside it and "
              "renamed into place only when complete)", 130)


def _chunk_bar() -> Any:
    """Progress on stderr: messages as lines, embedding as a bar with chunks/s and ETA."""
    from ragguard.progress import ProgressBar

    return ProgressBar(0, sys.stderr, unit="chunks", per="s")


@index_app.command("add")
@handle_errors
def index_add(
    directory: Path = typer.Argument(..., help="Index folder to update."),
    sources: list[Path] = typer.Argument(..., help="Folders or files to add or refresh."),
    config: Path | None = typer.Option(None, "--config", help="YAML config (the embedder section is used)."),
    include: list[str] = typer.Option([], "--include", help=INCLUDE_HELP),
    exclude: list[str] = typer.Option([], "--exclude", help=EXCLUDE_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print the update summary as JSON."),
) -> None:
    """Add new and changed files of SOURCE to an index; drop files gone from SOURCE (only they are embedded)."""
    from ragguard.retrieval.index import update_index

    with _left_as_it_was(directory):
        summary = update_index(directory, sources, _embedder_from(config), progress=_chunk_bar(), include=include,
                               exclude=exclude)
    _print_summary(summary, as_json, "updated")


@index_app.command("remove")
@handle_errors
def index_remove(
    directory: Path = typer.Argument(..., help="Index folder to update."),
    pattern: str = typer.Argument(..., help="Source path glob (e.g. 'handbook/old-*') or folder prefix."),
    as_json: bool = typer.Option(False, "--json", help="Print the update summary as JSON."),
) -> None:
    """Remove the chunks of every indexed source matching PATTERN."""
    from ragguard.retrieval.index import remove_from_index

    with _left_as_it_was(directory):
        summary = remove_from_index(directory, pattern, progress=_progress)
    _print_summary(summary, as_json, "updated")


@index_app.command("info")
@handle_errors
def index_info(
    directory: Path = typer.Argument(..., help="Index folder."),
    recall_sample: int = typer.Option(200, "--recall-sample", min=0, max=100000,
                                      help="Stored vectors used to measure recall@10 of approximate types (0 = skip)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Show what an index holds (verifies its checksums; measures recall of approximate types)."""
    from ragguard.retrieval.index import KnowledgeIndex

    info = KnowledgeIndex.load(directory).info(recall_sample=recall_sample)
    if as_json:
        typer.echo(json_line(info))
        return
    typer.echo(f"index:     {info['path']}")
    typer.echo(f"embedder:  {info['embedder']['name']} ({info['embedder']['dimension']}-d)")
    typer.echo(f"type:      {info['index_type']} ({info['metric']}) {info['index_params'] or ''}".rstrip())
    typer.echo(f"contents:  {counted(info['chunks'], 'chunk')} from {counted(info['documents'], 'document')} in "
               f"{counted(info['sources'], 'file')}, {counted(info['bytes'], 'byte')}")
    per = f", {info['bytes_per_vector']} bytes/vector" if info["bytes_per_vector"] is not None else ""
    typer.echo(f"memory:    {info['faiss_bytes']} bytes of FAISS index{per}")
    if info["recall_at_10"] is not None:
        typer.echo(f"recall@10: {info['recall_at_10']:.3f} against exact search ({info['recall_sample']} stored vectors)")
    typer.echo(f"languages: {', '.join(f'{k} {v}' for k, v in info['languages'].items())}")
    typer.echo(f"chunking:  {info['chunking']}")
    if info["skipped"]:
        typer.echo(f"skipped:   {counted(len(info['skipped']), 'file')} at build time (see --json)")


@index_app.command("search")
@handle_errors
def index_search(
    directory: Path = typer.Argument(..., help="Index folder."),
    query: str = typer.Argument(..., help="Search text."),
    k: int = typer.Option(5, "-k", min=1, max=100, help="Number of results."),
    config: Path | None = typer.Option(None, "--config", help="YAML config (embedder and retrieval sections)."),
    mode: str | None = typer.Option(None, "--mode", help="dense or hybrid (dense + BM25); default from config."),
    mmr: float | None = typer.Option(None, "--mmr", min=0.0, max=1.0, help="MMR relevance weight (diversity)."),
    source: str | None = typer.Option(None, "--source", help="Only sources matching this glob."),
    tag: list[str] = typer.Option([], "--tag", help="Only chunks with one of these tags (repeatable)."),
    lang: str | None = typer.Option(None, "--lang", help="Only chunks in this language (en, zh, ...)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Search an index and print the best chunks."""
    from ragguard.config import load_config
    from ragguard.errors import UsageError
    from ragguard.generation.backends import build_embedder
    from ragguard.pipeline import build_retriever

    if not query.strip():
        raise UsageError("the query is empty: pass some search text")
    cfg = load_config(config)
    changes: dict[str, Any] = {}
    for key, value in (("mode", mode), ("mmr_lambda", mmr), ("source_glob", source), ("language", lang)):
        if value is not None:
            changes[key] = value
    if tag:
        changes["tags"] = list(tag)
    if changes:
        from ragguard.errors import ConfigError

        try:
            cfg = cfg.replace("retrieval", **changes)
        except ConfigError as exc:
            raise UsageError(str(exc).replace("config key 'retrieval.", "option '")) from None
    results = build_retriever(cfg, build_embedder(cfg.embedder), directory).search(query, k)
    if as_json:
        typer.echo(json_line({"query": query, "results": [r.to_dict() for r in results]}))
        return
    if not results:
        filters = ", ".join(f"--{k} {v}" for k, v in (("source", source), ("lang", lang)) if v)
        filters = ", ".join(filter(None, [filters, *(f"--tag {t}" for t in tag)]))
        _progress("no chunk matches" + (f" {filters}: check the filters (`ragguard index info` lists what the "
                                        "index holds)" if filters else ": the index is empty"))
    for r in results:
        snippet = one_line(" ".join(r.text.split()))
        typer.echo(f"{r.score:.3f}  {one_line(r.chunk_id)}\n       {snippet[:200]}")
