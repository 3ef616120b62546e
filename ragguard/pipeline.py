"""The ragguard pipeline: retrieve, generate several answers, check, report."""

from __future__ import annotations

import copy
import hashlib
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path

from ragguard._text import clean_text, clean_value, counted, question_problem
from ragguard.adaptive import adaptive_rounds, samples_adaptively, settled
from ragguard.apps.calibration_io import annotate, resolve_calibration, warn_unused_gate
from ragguard.apps.check import checker_from_config, report_from_result
from ragguard.config import Config, load_config
from ragguard.core.protocols import Embedder, Generator, Retriever
from ragguard.core.signals import logprob_summary
from ragguard.core.types import Fingerprint, Passage, Report, Sample
from ragguard.endpoints import mark_single_sample
from ragguard.errors import UsageError
from ragguard.generation.nli import NLIModel
from ragguard.generation.prompts import build_messages, context_cost
from ragguard.provenance import bundled_index_path, derive_seed, library_versions, sample_seeds

__all__ = ["RagGuard", "build_retriever", "retriever_with_options", "derive_seed", "sample_seeds", "bundled_index_path", "library_versions",
           "index_id"]

def build_retriever(cfg: Config, embedder: Embedder, index: str | Path | None = None) -> Retriever:
    """The retriever of ``cfg.retrieval``: its index loaded and verified, searched with its options.

    Args:
        cfg: the config (its ``retrieval`` section gives the index and the search options).
        embedder: the embedder that built the index (checked against the index's manifest).
        index: the index folder; ``None`` = ``cfg.retrieval.index``, else the bundled example.

    Raises:
        IndexLoadError: when the index is missing, corrupt, or built by another embedder.
    """
    from ragguard.retrieval.index import IndexRetriever, KnowledgeIndex
    from ragguard.retrieval.search import RetrievalOptions

    knowledge = KnowledgeIndex.load(index or cfg.retrieval.index or bundled_index_path())
    knowledge.check_embedder(embedder)
    return IndexRetriever(knowledge, embedder, RetrievalOptions.from_config(cfg.retrieval))


def retriever_with_options(retriever: Retriever | None, config: Config) -> Retriever | None:
    """``retriever`` searching with ``config.retrieval``'s options: itself when they are its own, else a copy
    over the same loaded index (a retriever without options is returned as it is)."""
    options = getattr(retriever, "options", None)
    if retriever is None or options is None:
        return retriever
    from ragguard.retrieval.search import RetrievalOptions

    wanted = RetrievalOptions.from_config(config.retrieval)
    if wanted == options:
        return retriever
    view = copy.copy(retriever)
    view.options = wanted  # type: ignore[attr-defined]
    return view


class RagGuard:
    """Answers questions from an index with a consistency verdict.

    Build it with :meth:`from_config`, or pass your own generator, embedder
    and retriever (any objects that satisfy :mod:`ragguard.core.protocols`).
    """

    def __init__(
        self,
        config: Config,
        generator: Generator,
        embedder: Embedder,
        retriever: Retriever | None = None,
        index_path: str | None = None,
        nli: NLIModel | None = None,
    ) -> None:
        self.config = config
        self.generator = generator
        self.embedder = embedder
        self.retriever = retriever
        self.index_path = index_path
        self.nli = nli  # None: the config's consistency.nli_model, if any
        self._sampling_views: dict[object, Generator] = {}  # see _generator_for

    @classmethod
    def from_config(
        cls, config: Config | str | Path | None = None, *, index: str | Path | None = None, retrieval: bool = True
    ) -> RagGuard:
        """Build the pipeline from a config (path, object, or ``None`` for the embedded default).

        Models load lazily on the first question; the index is loaded and
        verified now, so a bad index fails fast. With ``retrieval=False`` no
        index is loaded (for :meth:`ask_conversation`).
        """
        from ragguard.generation.backends import build_embedder, build_generator

        cfg = config if isinstance(config, Config) else load_config(config)
        if index is not None:
            cfg = cfg.replace("retrieval", index=str(index))
        resolve_calibration(cfg)  # a calibration file named in the config is refused now, before any model loads
        embedder = build_embedder(cfg.embedder)  # embedder.backend: sentence-transformers or openai
        retriever, index_path = None, None
        if retrieval:
            index_path = str(Path(cfg.retrieval.index) if cfg.retrieval.index else bundled_index_path())
            retriever = build_retriever(cfg, embedder, index_path)
        generator = build_generator(cfg)  # generator.backend: transformers, openai or vllm
        return cls(cfg, generator, embedder, retriever, index_path)

    def with_settings(self, config: Config) -> RagGuard:
        """This guard with another config's per-call settings, sharing its loaded models and index.

        The one way to ask with other settings (the LangChain components and
        ``ragguard serve`` use it): ``config`` may change ``sampling`` (drawn
        by a copy of the generator that shares its weights, so what is drawn
        is what the fingerprint's config hash says), ``retrieval`` (``top_k``,
        ``min_score`` and the search options, applied to the loaded index),
        ``prompt`` and ``consistency``. Building a view loads nothing.

        Raises:
            UsageError: when ``config`` names another generator or embedder than the loaded ones.
        """
        for section in ("generator", "embedder"):
            mine, theirs = getattr(self.config, section), getattr(config, section)
            changed = [f"{section}.{f.name}={getattr(theirs, f.name)!r}" for f in fields(mine)
                       if getattr(mine, f.name) != getattr(theirs, f.name)]
            if changed:
                raise UsageError(
                    f"with_settings keeps the loaded models, but the config changes {', '.join(changed)}: "
                    "build another RagGuard (RagGuard.from_config) for other models"
                )
        view = RagGuard(config, self.generator, self.embedder, self._retriever_for(config), self.index_path, self.nli)
        view._sampling_views = self._sampling_views  # views share the weight-sharing generator copies
        return view

    def _retriever_for(self, config: Config) -> Retriever | None:
        """The retriever searching with ``config.retrieval``'s options (a copy over the same loaded index)."""
        return retriever_with_options(self.retriever, config)

    def ask(self, question: str, *, samples: int | None = None, seed: int | None = None) -> Report:
        """Answer one question.

        Args:
            question: the user's question (must not be empty).
            samples: answers to draw (1 greedy + samples-1 seeded); default from config.
            seed: base seed; default from config.

        Raises:
            UsageError: on an empty question or bad overrides.
        """
        return self.ask_many([question], samples=samples, seed=seed)[0]

    def ask_many(
        self, questions: Sequence[str], *, samples: int | None = None, seed: int | None = None
    ) -> list[Report]:
        """Answer several questions, sharing batched generation passes.

        Each report has the tokens :meth:`ask` gives its question alone: seeds
        derive from the question, and every row samples from its own
        generator. The float32 sums of a batched pass run in another order, so a
        sample's ``logprob_mean`` or ``logprob_min`` can differ in its last
        (4th) decimal; ask one question at a time where the record must match
        :meth:`ask` bit for bit. Questions are grouped so that one pass holds at
        most ``generator.max_batch_tokens`` tokens.
        """
        if isinstance(questions, str):  # iterating it would ask each character
            raise UsageError("ask_many takes a list of questions, got one string: use ask(question) or "
                             "ask_many([question])")
        for q in questions:
            require_question(q)
        cfg = self._overridden(samples, seed)
        jobs = [_Job.of(q) for q in questions]
        for job in jobs:
            self._require_length(job.question, cfg)
        self._load_models(jobs)
        for job in jobs:
            job.started = job.started or time.perf_counter()
            if self.retriever is not None and cfg.retrieval.top_k > 0:
                t = time.perf_counter()
                job.passages = self.retriever.search(job.question, cfg.retrieval.top_k)
                job.timings["retrieve"] = time.perf_counter() - t
            job.messages = build_messages(job.question, job.passages, cfg.prompt.system, cfg.prompt.max_context_chars)
            job.off_topic = _off_topic(job.passages, cfg) if self.retriever is not None else None
        return self._answer(jobs, cfg)

    def ask_conversation(
        self,
        messages: Sequence[Mapping[str, str]],
        *,
        question: str | None = None,
        samples: int | None = None,
        seed: int | None = None,
    ) -> Report:
        """Answer a whole conversation as it is: no retrieval, no ragguard prompt.

        The ``{"role", "content"}`` messages go to the generator unchanged and
        the answers are checked against ``question`` (default: the last user
        message) without context. Seeds, sampling (adaptive rounds included),
        warnings and fingerprint are those of :meth:`ask`.

        Raises:
            UsageError: when there is no question (no user message and no ``question``).
        """
        if question is None:
            question = next((str(m.get("content", "")) for m in reversed(messages) if m.get("role") == "user"), "")
        require_question(question)
        job = _Job.of(question)
        self._require_length(job.question, cfg := self._overridden(samples, seed))
        self._load_models([job])
        job.messages = [{k: clean_value(v, f"messages[{i}].{k}", job.notes) for k, v in m.items()}
                        for i, m in enumerate(messages)]
        return self._answer([job], cfg)[0]

    def check_question(self, question: object) -> None:
        """Raise the :class:`UsageError` that :meth:`ask` would raise for ``question`` before any work
        (not a string, empty, no word, over ``generator.max_question_tokens``), so a caller batching
        questions can refuse one without failing the others."""
        require_question(question)
        self._require_length(_Job.of(str(question)).question, self.config)

    def _require_length(self, question: str, cfg: Config) -> None:
        """Refuse a question over ``generator.max_question_tokens`` tokens of the generator.

        Refused rather than cut: a cut question may ask something else, and the answer would not say so.
        Every generator token holds at least one UTF-8 byte, so a question of no more bytes than the
        limit is never counted (no tokenizer is loaded for it). A generator without ``count_tokens``
        (an HTTP backend) is estimated at 3 characters a token, as the batching estimates prompts.
        """
        limit = cfg.generator.max_question_tokens
        if len(question.encode("utf-8")) <= limit:
            return
        count = getattr(self.generator, "count_tokens", None)
        tokens = int(count(question)) if callable(count) else context_cost(question) // 3 + 1
        if tokens > limit:
            raise UsageError(
                f"the question is {tokens} tokens ({len(question)} characters), over generator.max_question_tokens "
                f"{limit}: shorten it, or raise generator.max_question_tokens in the config"
            )

    def _load_models(self, jobs: list[_Job]) -> None:
        """Load the embedder and generator now, timed as the first job's ``load`` stage.

        Models load lazily; without this the first search or pass would carry the loading time
        (seconds) in ``retrieve`` or ``generate``. Loading is done once for the whole call, so it is
        counted once, on the first job (and in its ``total``); a loaded model costs ~0. A generator
        is loaded here only when it says it is not (``loaded`` is False): one without that flag
        loads on its first pass, as before.
        """
        started = time.perf_counter()
        for model in (self.embedder, self.generator):
            load = getattr(model, "load", None)
            if callable(load) and (model is self.embedder or getattr(model, "loaded", True) is False):
                load()
        if jobs:
            jobs[0].started = started
            jobs[0].timings["load"] = time.perf_counter() - started

    def _overridden(self, samples: int | None, seed: int | None) -> Config:
        changes = {k: v for k, v in (("samples", samples), ("seed", seed)) if v is not None}
        return self.config.replace("sampling", **changes) if changes else self.config

    def _answer(self, jobs: list[_Job], cfg: Config) -> list[Report]:
        """Draw, check and report the prepared jobs (messages built, off-topic ones marked)."""
        for job in jobs:
            job.seeds = sample_seeds(cfg.sampling.seed, job.question, cfg.sampling.samples)
        answerable = [job for job in jobs if job.off_topic is None]
        adaptive = samples_adaptively(cfg.sampling.adaptive, cfg.sampling.samples)
        pending = answerable
        # Seeds derive from the sample index, so each round draws exactly the samples a
        # fixed-N run would draw next: an adaptive result is computed on a prefix of it.
        for upto in adaptive_rounds(cfg.sampling.samples) if adaptive else [cfg.sampling.samples]:
            self._generate(pending, cfg, upto)
            for job in pending:
                self._check_job(job, cfg)
                if adaptive and upto < cfg.sampling.samples:
                    job.stopped = settled(job.report, cfg.sampling.samples)
            pending = [job for job in pending if not job.stopped]
            if not pending:
                break
        for job in jobs:
            if job.off_topic is not None:
                job.report = Report(job.question, "", "abstain", 0.0, 0.0, [], [], [], warnings=[job.off_topic])
        reports = []
        calibration = resolve_calibration(cfg, getattr(self.generator, "model_sha256", None))  # once per batch
        warn_unused_gate(cfg, calibration)
        for job in jobs:
            report = job.report
            report.warnings[:0] = job.notes
            used = job.seeds[: len(job.texts)]
            report.warnings.extend(_sampling_warnings(job.texts, used, cfg))
            mark_single_sample(report)
            report.sources = job.passages
            report.fingerprint = self.fingerprint(cfg, [s for s in used if s is not None])
            annotate(report, calibration, cfg)
            if adaptive and job.off_topic is None:
                report.adaptive = {"drawn": len(job.texts), "of": cfg.sampling.samples,
                                   "stopped": job.stopped or "all drawn"}
            report.timings = job.timings
            reports.append(report)
        _totals(jobs)
        return reports

    def _generator_for(self, cfg: Config) -> Generator:
        """The generator, drawing with ``cfg.sampling``.

        A generator reads temperature, top-k/p, penalty and length from its own
        ``sampling``; when ``cfg`` draws otherwise (a :meth:`with_settings` view,
        or ``self.config`` replaced after construction), a shallow copy with the
        config's settings shares the loaded weights, so what is drawn is what the
        fingerprint says. Views share these copies.
        """
        generator = self.generator
        current = getattr(generator, "sampling", None)
        if current is None or _draw_settings(current) == _draw_settings(cfg.sampling):
            return generator
        views = self._sampling_views
        view = views.get(cfg.sampling)
        if view is None:
            load = getattr(generator, "load", None)
            if callable(load):
                load()  # load before copying, so the copies share one set of weights
            view = copy.copy(generator)
            view.sampling = cfg.sampling  # type: ignore[attr-defined]
            if len(views) < 16:
                views[cfg.sampling] = view
        return view

    def _generate(self, jobs: list[_Job], cfg: Config, upto: int | None) -> None:
        """Draw the samples each job still lacks (up to ``upto``), in batched passes."""
        pending = [(job, job.seeds[len(job.texts) : upto]) for job in jobs]
        pending = [(job, seeds) for job, seeds in pending if seeds]
        generator = self._generator_for(cfg) if pending else self.generator
        batch = getattr(generator, "generate_batch", None)
        for group in _groups(pending, cfg, getattr(generator, "pass_tokens", None)):
            t = time.perf_counter()
            if batch is not None and len(group) > 1:
                results = batch([job.messages for job, _ in group], [seeds for _, seeds in group])
            else:
                results = [generator.generate(job.messages, seeds) for job, seeds in group]
            share = (time.perf_counter() - t) / len(group)  # one pass serves the whole group
            for (job, _), completions in zip(group, results, strict=True):
                job.texts.extend(c.text for c in completions)
                job.logprobs.extend(getattr(c, "token_logprobs", None) for c in completions)
                job.truncated.extend(bool(getattr(c, "truncated", False)) for c in completions)
                job.timings["generate"] = job.timings.get("generate", 0.0) + share

    def _check_job(self, job: _Job, cfg: Config) -> None:
        t = time.perf_counter()
        job.report = self.check(job.question, job.texts, job.seeds[: len(job.texts)], cfg, job.passages,
                                logprobs=job.logprobs, truncated=job.truncated,
                                model_sha256=getattr(self.generator, "model_sha256", None))
        job.timings["check"] = job.timings.get("check", 0.0) + time.perf_counter() - t

    def check(
        self,
        question: str,
        texts: Sequence[str],
        seeds: Sequence[int | None],
        cfg: Config | None = None,
        context: Sequence[str | Passage] = (),
        logprobs: Sequence[Sequence[float] | None] | None = None,
        truncated: Sequence[bool] | None = None,
        model_sha256: str | None = None,
    ) -> Report:
        """Score answers produced elsewhere (``seeds[i] is None`` marks the greedy one).

        ``logprobs[i]``, when given, are answer ``i``'s token log-probabilities (``None``: unknown);
        ``truncated[i]`` says answer ``i`` was cut at the length limit (a warning says how many).
        ``model_sha256`` is the hash of the weights that wrote them when known (``ask`` passes its
        generator's; ``consistency.calibration: auto`` applies the shipped calibration to that file only).
        """
        cfg = cfg or self.config
        if len(texts) != len(seeds):
            raise UsageError(f"got {len(texts)} answers but {len(seeds)} seeds: pass one seed (or None) per answer")
        if logprobs is not None and len(logprobs) != len(texts):
            raise UsageError(f"got {len(texts)} answers but {len(logprobs)} log-probability lists: pass one "
                             "(or None) per answer")
        checker = checker_from_config(cfg, self.embedder, self.nli, model_sha256)
        per_answer = list(logprobs) if logprobs is not None else [None] * len(texts)
        cut = list(truncated) if truncated is not None else [False] * len(texts)
        samples = [Sample(text=t, seed=s, greedy=s is None, truncated=c, **logprob_summary(lp))
                   for t, s, lp, c in zip(texts, seeds, per_answer, cut, strict=True)]
        report = report_from_result(question, checker.check(question, samples, context))
        if any(cut):
            report.warnings.append(
                f"{sum(cut)} of {counted(len(cut), 'answer')} {'was' if sum(cut) == 1 else 'were'} cut at "
                "sampling.max_new_tokens "
                f"({cfg.sampling.max_new_tokens} tokens) and may end mid-sentence: raise it to see them whole"
            )
        return report

    def fingerprint(self, cfg: Config, seeds: Sequence[int]) -> Fingerprint:
        """Everything that produced an answer (model, adapter, embedder, config, versions, device, seeds)."""
        return Fingerprint(
            model=getattr(self.generator, "name", type(self.generator).__name__),
            adapter=getattr(self.generator, "adapter", None),
            embedder=getattr(self.embedder, "name", type(self.embedder).__name__),
            config_hash=cfg.hash(),
            setup_hash=cfg.setup_hash(),
            versions=library_versions(),
            device=str(getattr(self.generator, "device", "unknown")),
            seeds=list(seeds),
            model_sha256=getattr(self.generator, "model_sha256", None),
            adapter_sha256=getattr(self.generator, "adapter_sha256", None),
            index=index_id(self.index_path),
            dtype=getattr(self.generator, "dtype", None),
            cpu=getattr(self.generator, "cpu", None),
        )


def require_question(
    question: object,
    *,
    what: str = "a question",
    noun: str = "question",
    takes: str = "ask(question) takes one, ask_many([...]) a list",
    example: str = 'pass a question, e.g. ragguard ask "How many leave days do I get?"',
) -> None:
    """Refuse what is not an askable question (not a string, empty, no word in it) with a usage error.

    ``what``, ``noun``, ``takes`` and ``example`` word the two messages for the caller (a retriever's query).
    """
    if not isinstance(question, str):
        raise UsageError(f"{what} must be a string, got {type(question).__name__}: {takes}")
    problem = question_problem(question, noun)
    if problem:
        raise UsageError(f"{problem}: {example}")


def _totals(jobs: list[_Job]) -> None:
    """Set each job's ``timings["total"]``: the wall time of the call for one question; in a batch, the question's
    own stages plus an equal share of the rest of the batch's wall time (what no stage timed: prompts,
    fingerprints, waiting for the batch's other questions to be checked), so that the totals of a batch add up
    to its wall time instead of each one counting all of it."""
    if not jobs:
        return
    now = time.perf_counter()
    stages = [sum(v for k, v in job.timings.items() if k != "total") for job in jobs]
    started = min((job.started for job in jobs if job.started), default=now)
    share = max(0.0, now - started - sum(stages)) / len(jobs)
    for job, own in zip(jobs, stages, strict=True):
        job.timings["total"] = own + share


@dataclass
class _Job:
    """One question's state while :meth:`RagGuard.ask_many` works on it."""

    question: str
    passages: list[Passage] = field(default_factory=list)
    messages: list[dict[str, str]] = field(default_factory=list)
    seeds: list[int | None] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    logprobs: list[tuple[float, ...] | None] = field(default_factory=list)  # per text, from its completion
    truncated: list[bool] = field(default_factory=list)  # per text: cut at the length limit
    timings: dict[str, float] = field(default_factory=dict)
    started: float = 0.0
    off_topic: str | None = None
    stopped: str | None = None  # why adaptive sampling stopped early ("agreed", "contradiction")
    report: Report = None  # type: ignore[assignment]
    notes: list[str] = field(default_factory=list)  # warnings about the input (invalid text replaced)

    @classmethod
    def of(cls, question: str) -> _Job:
        """The job of ``question``, its invalid characters replaced (see :mod:`ragguard._text`)."""
        cleaned, warning = clean_text(question.strip(), "the question")
        return cls(question=cleaned, notes=[warning] if warning else [])


def _tokens_per_row(prompt_tokens: int, rows: int, new_tokens: int) -> int:
    """Key/value positions of a prompt whose every row holds its own copy of the prompt's cache."""
    return rows * (prompt_tokens + new_tokens)


def _groups(
    pending: list[tuple[_Job, list[int | None]]], cfg: Config, pass_tokens: Callable[[int, int, int], int] | None = None,
) -> list[list[tuple[_Job, list[int | None]]]]:
    """Split work into passes of at most ``generator.max_batch_tokens`` tokens (prompt length estimated from chars).

    ``pass_tokens(prompt_tokens, rows, new_tokens)`` is what one prompt holds in a pass: a generator
    that keeps one copy of a prompt's cache for all its rows says so; by default every row holds one.
    """
    budget, new_tokens = cfg.generator.max_batch_tokens, cfg.sampling.max_new_tokens
    held = pass_tokens or _tokens_per_row
    groups: list[list[tuple[_Job, list[int | None]]]] = []
    current: list[tuple[_Job, list[int | None]]] = []
    used = 0

    def prompt_tokens_of(job: _Job) -> int:
        return sum(context_cost(m["content"]) for m in job.messages) // 3 + 16

    # Prompts of similar length share a pass, so little of it is spent on padding.
    # Results are keyed by job, so the order of passes changes no answer.
    for job, seeds in sorted(pending, key=lambda item: prompt_tokens_of(item[0])):
        prompt_tokens = prompt_tokens_of(job)
        cost = held(prompt_tokens, len(seeds), new_tokens)
        if current and used + cost > budget:
            groups.append(current)
            current, used = [], 0
        current.append((job, seeds))
        used += cost
    if current:
        groups.append(current)
    return groups


def _off_topic(passages: Sequence[Passage], cfg: Config) -> str | None:
    """Why the index cannot answer (best passage below ``retrieval.min_score``), or None."""
    threshold = cfg.retrieval.min_score
    if threshold is None or cfg.retrieval.top_k == 0:
        return None
    best = max((p.score for p in passages), default=None)
    if best is None or best < threshold:
        shown = "no passage" if best is None else f"the best passage scores {best:.2f}"
        return (f"the index has nothing on this: {shown}, below retrieval.min_score {threshold}; "
                "ragguard abstains instead of letting the model guess")
    return None


def _draw_settings(sampling: object) -> tuple[object, ...]:
    """The sampling settings a generator reads (not the count or the base seed, which the pipeline owns)."""
    return tuple(getattr(sampling, k, None) for k in ("temperature", "top_p", "top_k", "repetition_penalty",
                                                       "max_new_tokens"))


def _sampling_warnings(texts: Sequence[str], seeds: Sequence[int | None], cfg: Config) -> list[str]:
    """Flag a sampler that is not sampling: identical seeded answers at temperature > 0."""
    seeded = [t for t, s in zip(texts, seeds, strict=True) if s is not None]
    if len(seeded) >= 2 and cfg.sampling.temperature > 0 and len(set(texts)) == 1:
        return [
            f"degenerate sampling: all {len(texts)} answers are identical although temperature is "
            f"{cfg.sampling.temperature}; the check cannot see instability (raise temperature or check the sampler)"
        ]
    return []


def index_id(path: str | None) -> str | None:
    """The index's manifest hash: identifies its contents wherever it lives on disk."""
    if path is None:
        return None
    manifest = Path(path) / "manifest.json"
    try:
        return "sha256:" + hashlib.sha256(manifest.read_bytes()).hexdigest()[:16]
    except OSError:
        return None
