"""JSON Schemas of ragguard's JSON outputs, shipped with the package.

``record.schema.json`` (JSON Schema draft 2020-12) describes the ``ask --json`` record at its
root; its ``$defs`` also describe one line of an audit's ``results.jsonl`` (``AuditLine``) and
what ``check --json`` prints (``CheckOutput``). ``ragguard serve`` puts the same definitions in
its OpenAPI document (``/openapi.json``). Validate a record with, for instance, the
``jsonschema`` package::

    import jsonschema
    from ragguard.schemas import record_schema

    jsonschema.validate(record, record_schema())                    # an ask record
    jsonschema.validate(line, record_schema("AuditLine"))           # a results.jsonl line
"""

from __future__ import annotations

import copy
import functools
import json
from importlib import resources
from typing import Any

from ragguard.errors import UsageError

__all__ = ["RECORD_SCHEMA", "record_schema"]

RECORD_SCHEMA = "record.schema.json"


@functools.cache
def _load() -> dict[str, Any]:
    return json.loads(resources.files(__name__).joinpath(RECORD_SCHEMA).read_text(encoding="utf-8"))


def record_schema(definition: str | None = None) -> dict[str, Any]:
    """The record schema (a fresh copy), or one of its ``$defs`` as a schema of its own.

    Args:
        definition: a name of the schema's ``$defs`` (``AuditLine``, ``CheckOutput``, ``AskRecord`` ...);
            ``None`` gives the whole schema, whose root is the ask record.

    Raises:
        UsageError: ``definition`` is not one of the schema's ``$defs`` (the message lists them).
    """
    schema = copy.deepcopy(_load())
    if definition is None:
        return schema
    if definition not in schema["$defs"]:
        raise UsageError(f"{definition!r} is not a definition of {RECORD_SCHEMA}: use one of "
                       f"{', '.join(sorted(schema['$defs']))}")
    # The definition's $refs ("#/$defs/...") resolve against the document root: keep the $defs beside it.
    return {"$schema": schema["$schema"], "$ref": f"#/$defs/{definition}", "$defs": schema["$defs"]}
