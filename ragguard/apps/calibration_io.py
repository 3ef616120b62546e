"""Finding, reading and checking calibration files (``consistency.calibration``).

* ``'auto'`` (the default) uses the calibration shipped in
  ``ragguard/calibrations/embedded.json`` when the embedded default model
  answers, and none otherwise: a calibration holds for the model, adapter and
  prompt it was fitted for only.
* A path is read as JSON (never unpickled) and validated by
  :meth:`ragguard.core.calibration.Calibration.from_dict`; a file that is
  missing, not JSON or not a calibration is refused with a one-line
  :class:`~ragguard.errors.ConfigError`.
* :func:`mismatches` compares what a calibration was fitted for with the
  fingerprint of the answer it calibrates; the record says so, and a warning
  is logged once per file and setup.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
from pathlib import Path
from typing import Any

from ragguard._text import counted, shorten
from ragguard.config.schema import TRANSPORT, setting_values
from ragguard.core.calibration import Calibration, CalibrationFileError
from ragguard.errors import ConfigError

__all__ = ["ANSWER_NEUTRAL", "EMBEDDED_CALIBRATION", "load_calibration", "resolve_calibration", "mismatches", "annotate",
           "is_off", "warn_unused_gate"]

# Settings that change no signal of an answer given: how requests reach a server (the audit's resume list), and
# how a flagged answer is delivered (withheld answers are left out of a fit, and get confidence 0 when used).
# A calibration fitted under one value holds under another.
ANSWER_NEUTRAL: frozenset[str] = TRANSPORT | {"consistency.on_flagged"}

EMBEDDED_CALIBRATION = Path(__file__).resolve().parent.parent / "calibrations" / "embedded.json"
_log = logging.getLogger("ragguard.calibration")
_cache: dict[str, Calibration] = {}
_warned: set[tuple[str, tuple[str, ...]]] = set()


def load_calibration(path: str | Path) -> Calibration:
    """Read and validate a calibration file, once per process.

    A process keeps the calibration it first read from a path: a file rewritten while an audit or a
    server runs takes effect at the next start, so one run never mixes two calibrations (each
    record names the file's sha256).
    """
    file = Path(path).expanduser()
    try:
        key = str(file.resolve(strict=True))
    except OSError:
        raise ConfigError(
            f"consistency.calibration: {file} does not exist: write one with `ragguard calibrate AUDIT_DIR --out "
            f"{file.name}`, or set it to null"
        ) from None
    if key in _cache:
        return _cache[key]
    raw = file.read_bytes()
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"consistency.calibration: {file} is not JSON ({exc}): pass a file `ragguard calibrate` "
                          "wrote") from None
    try:
        calibration = Calibration.from_dict(data, source=str(file))
    except CalibrationFileError as exc:
        raise ConfigError(f"consistency.calibration: {file} is refused: {exc}") from None
    calibration.data.setdefault("file_sha256", hashlib.sha256(raw).hexdigest())
    _cache[key] = calibration
    return calibration


def is_off(value: Any) -> bool:
    """Whether a ``consistency.calibration`` value asks for no calibration."""
    return value is None or str(value).strip().lower() in ("", "none", "null", "off")


def resolve_calibration(config: Any, model_sha256: str | None = None) -> Calibration | None:
    """The calibration ``config.consistency.calibration`` asks for, or ``None``.

    ``model_sha256`` is the hash of the weights that wrote the answers: ``'auto'`` applies the shipped
    calibration only to answers of the very model file it was fitted for, without an adapter
    (answers checked with ``ragguard check`` or a LangChain guard come from a model it says nothing
    about, and so do those of a test's stand-in generator).
    """
    value = config.consistency.calibration
    if is_off(value):
        return None
    if str(value).strip().lower() == "auto":
        if not model_sha256 or config.generator.adapter or not EMBEDDED_CALIBRATION.exists():
            return None
        shipped = load_calibration(EMBEDDED_CALIBRATION)
        return shipped if shipped.fitted_for.get("model_sha256") == model_sha256 else None
    return load_calibration(value)


def mismatches(calibration: Calibration, fingerprint: dict[str, Any] | None, samples: int | None = None,
               config: Any = None) -> list[str]:
    """What differs between the setup ``calibration`` was fitted for and ``fingerprint``'s.

    ``config``: the config that produced the answer. A file that records its settings
    (``fitted_for.settings``) is compared setting by setting, and each one that differs is named;
    the settings of :data:`ANSWER_NEUTRAL` never count. An older file knows the setup only by its
    hash: ``samples`` (how many answers the record drew) then names the usual cause (``--samples``)
    where it differs too, and the hash of ``config`` with the neutral settings at their defaults
    counts as the same setup.
    """
    if not fingerprint:
        return []
    fitted = calibration.fitted_for
    out: list[str] = []
    if fitted.get("model_sha256") and fingerprint.get("model_sha256"):
        if fitted["model_sha256"] != fingerprint["model_sha256"]:
            out.append(f"model: fitted for {fitted.get('model')} ({str(fitted['model_sha256'])[:12]}), "
                       f"answered by {fingerprint.get('model')} ({str(fingerprint['model_sha256'])[:12]})")
    elif fitted.get("model") and fitted.get("model") != fingerprint.get("model"):
        out.append(f"model: fitted for {fitted.get('model')}, answered by {fingerprint.get('model')}")
    by_settings = config is not None and isinstance(fitted.get("settings"), dict)
    setup = "setup_hash" if fitted.get("setup_hash") and fingerprint.get("setup_hash") else "config_hash"
    for key, what in (("adapter", "adapter"), ("embedder", "embedder"),
                      (setup, f"config (prompt, sampling or thresholds; fingerprint.{setup})")):
        if key == setup and by_settings:
            out += _setting_mismatches(fitted["settings"], config)
            continue
        if key in fitted and fitted.get(key) != fingerprint.get(key):
            if key == "setup_hash" and config is not None and fitted[key] == _neutral_hash(config):
                continue  # only the neutral settings differ (a file that predates fitted_for.settings)
            out.append(f"{what}: fitted for {fitted.get(key)}, this answer used {fingerprint.get(key)}")
            if key == setup and samples is not None and fitted.get("samples") and samples != fitted["samples"]:
                out[-1] += (f"; it drew {counted(samples, 'sample')} where the file was fitted "
                            f"on {fitted['samples']} per "
                            f"question (--samples {fitted['samples']}, or sampling.samples, gives its setup)")
    return out


@functools.cache
def _default_settings() -> dict[str, Any]:
    """The default config's settings (read for every calibrated answer: built once)."""
    from ragguard.config.schema import Config

    return setting_values(Config())


def _neutral_hash(config: Any) -> str:
    """``config``'s setup hash with the settings of :data:`ANSWER_NEUTRAL` at their defaults."""
    default = _default_settings()
    for name in sorted(ANSWER_NEUTRAL):
        section, key = name.split(".", 1)
        config = config.replace(section, **{key: default[name]})
    return str(config.setup_hash())


def _setting_mismatches(fitted: dict[str, Any], config: Any) -> list[str]:
    """``config: KEY fitted for A, this answer used B`` for each answer-changing setting that differs."""
    now, default = setting_values(config), _default_settings()
    differ = [k for k in sorted(fitted.keys() | now.keys()) if k not in ANSWER_NEUTRAL
              and fitted.get(k, default.get(k)) != now.get(k, default.get(k))]
    out = [f"config: {k} fitted for {shorten(repr(fitted.get(k, default.get(k))), 40)}, this answer used "
           f"{shorten(repr(now.get(k, default.get(k))), 40)}" for k in differ]
    for i, k in enumerate(differ):
        if k == "sampling.samples":
            out[i] += f" (--samples {fitted[k]}, or sampling.samples, gives its setup)"
    return out


def annotate(report: Any, calibration: Calibration | None, config: Any = None) -> None:
    """Add the fitted-for check to a calibrated report's ``calibration`` field (and log it once).

    ``config``: the config that produced the answer (it names the setting that differs; see :func:`mismatches`).
    """
    if calibration is None or not report.calibrated:
        return
    fingerprint = report.fingerprint.to_dict() if report.fingerprint is not None else None
    found = mismatches(calibration, fingerprint, len(report.samples or []) or None, config)
    note = dict(report.calibration or {})
    note.update(file=calibration.source, sha256=calibration.data.get("file_sha256"),
                fitted_for_this_setup=not found)
    if found:
        note["mismatch"] = found
        key = (calibration.source, tuple(found))
        if key not in _warned:
            _warned.add(key)
            _log.warning("the calibration %s was fitted for another setup (%s): its confidence may not hold; "
                         "refit it with `ragguard calibrate` on an audit of this setup", calibration.source,
                         "; ".join(found))
    report.calibration = note


_gate_warned: set[float] = set()


def warn_unused_gate(config: Any, calibration: Calibration | None) -> None:
    """Log once per process that ``consistency.min_confidence`` gates nothing when no calibration applies.

    The gate reads the calibrated probability; without a calibration (none set, or ``auto`` for a model
    that is not the embedded default) the answers would pass it silently.
    """
    gate = config.consistency.min_confidence
    if gate is None or calibration is not None or gate in _gate_warned:
        return
    _gate_warned.add(gate)
    value = config.consistency.calibration
    why = ("consistency.calibration is off" if is_off(value) else
           "calibration: auto applies the shipped file to the embedded default model only" if str(value).lower() == "auto"
           else "no calibration applies")
    _log.warning("consistency.min_confidence %.2f has no effect: %s, and the gate reads a calibrated confidence. "
                 "Set consistency.calibration to a file written by `ragguard calibrate` for this model, or remove "
                 "min_confidence", gate, why)
