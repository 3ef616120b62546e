"""Reading a YAML mapping into config dataclasses: documented fields, value checks, unknown keys.

Shared by the ragguard config (:mod:`ragguard.config.schema`) and the tuning
config (:mod:`ragguard.tuning.config`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import field, fields
from typing import Any

from ragguard.errors import ConfigError

__all__ = ["documented", "require", "sections_from_dict", "reject_unknown", "coerce_value", "parse_yaml"]


def documented(
    text: str, default: Any = dataclasses.MISSING, factory: Any = dataclasses.MISSING, *, hashed_when_set: bool = False
) -> Any:
    """A documented field. ``hashed_when_set``: left out of :meth:`Config.hash` while at its default, so
    adding such a key later keeps the hash (and ``audit --resume``) of every existing config."""
    metadata = {"help": text, "hashed_when_set": hashed_when_set}
    if factory is not dataclasses.MISSING:
        return field(default_factory=factory, metadata=metadata)
    return field(default=default, metadata=metadata)


def require(cond: bool, section: str, name: str, value: Any, expected: str) -> None:
    """Raise :class:`ConfigError` naming ``section.name``, the bad value and what is expected, unless ``cond``."""
    if not cond:
        raise ConfigError(f"config key '{section}.{name}' has bad value {value!r}: expected {expected}")


def sections_from_dict(
    data: dict[str, Any] | None,
    section_types: dict[str, type],
    source: str,
    coerce: Callable[[type, str, str, Any], Any],
    kind: str = "config",
) -> dict[str, Any]:
    """The validated section objects of a YAML mapping ``{section: {key: value}}``.

    Unknown sections or keys and non-mapping sections raise :class:`ConfigError`
    naming the valid keys; ``coerce(section_cls, section, key, value)`` checks
    each value. Shared by the ragguard config and the tuning config (``kind``
    names which one in messages).
    """
    data = data or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping of sections at the top level, got {type(data).__name__}")
    reject_unknown(data, list(section_types), source, "", kind)
    sections: dict[str, Any] = {}
    for name, value in data.items():
        if value is None:
            continue
        if not isinstance(value, dict):
            raise ConfigError(f"{source}: section '{name}' must be a mapping, got {value!r}")
        section_cls = section_types[name]
        reject_unknown(value, [f.name for f in fields(section_cls)], source, f"{name}.", kind)
        sections[name] = section_cls(**{k: coerce(section_cls, name, k, v) for k, v in value.items()})
    return sections


def reject_unknown(data: dict[str, Any], valid: list[str], source: str, prefix: str, kind: str = "config") -> None:
    """Raise :class:`ConfigError` on the first key of ``data`` not in ``valid``, listing the valid ones."""
    unknown = [k for k in data if k not in valid]
    if unknown:
        raise ConfigError(
            f"{source}: unknown {kind} key '{prefix}{unknown[0]}'; valid keys are: "
            + ", ".join(f"{prefix}{k}" for k in valid)
        )


def coerce_value(section_cls: type, section: str, key: str, value: Any) -> Any:
    """Check a YAML scalar against the field's annotation (ints stay ints, etc.)."""
    annotation = {f.name: f.type for f in fields(section_cls)}[key]
    text = str(annotation)
    if value is None:
        if "None" in text:
            return None
        raise ConfigError(f"config key '{section}.{key}' must not be empty")
    if text.startswith("bool"):
        if not isinstance(value, bool):
            raise ConfigError(f"config key '{section}.{key}' has bad value {value!r}: expected true or false")
        return value
    if text.startswith("int"):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"config key '{section}.{key}' has bad value {value!r}: expected an integer")
        return value
    if text.startswith("float"):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"config key '{section}.{key}' has bad value {value!r}: expected a number")
        return float(value)
    if "list[str]" in text and isinstance(value, list):
        if not value or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"config key '{section}.{key}' has bad value {value!r}: expected a non-empty list of strings")
        return value
    if text.startswith("str"):
        if not isinstance(value, str):
            raise ConfigError(f"config key '{section}.{key}' has bad value {value!r}: expected a string")
        return value
    return value


def parse_yaml(text: str, what: str) -> Any:
    """The YAML document ``text`` (a config file, named ``what`` in messages), safely loaded.

    A key given twice in one mapping is refused with its line: YAML would keep the last one
    silently, so the first setting a user reads in the file would not be the one used.
    """
    import yaml

    class _Loader(yaml.SafeLoader):
        pass

    def mapping(loader: _Loader, node: yaml.MappingNode) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = loader.construct_object(key_node)  # type: ignore[no-untyped-call]
            if key in seen:
                raise ConfigError(f"{what} gives the key {key!r} twice (line {key_node.start_mark.line + 1}): "
                                  "keep one")
            seen.add(key)
        return loader.construct_mapping(node)

    _Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, mapping)
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{what} is not valid YAML{where}: fix the syntax") from None
