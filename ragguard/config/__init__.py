"""The configuration schema, validated on load.

One YAML file with the sections below; every field has a default, so an
empty file (or no file) is the embedded offline default. Unknown keys are
rejected with the valid ones listed, and bad values name the field and show
the value.

The schema (:mod:`~ragguard.config.schema`), checking a mapping against it
(:mod:`~ragguard.config.validation`) and loading a file
(:mod:`~ragguard.config.loading`) are modules of their own; import them all
from here.
"""

from ragguard.config.loading import load_config
from ragguard.config.schema import (
    DEFAULT_SYSTEM_PROMPT,
    Config,
    ConsistencyConfig,
    EmbedderConfig,
    GeneratorConfig,
    PromptConfig,
    RetrievalConfig,
    SamplingConfig,
)
from ragguard.config.validation import reject_unknown, sections_from_dict

__all__ = [
    "GeneratorConfig",
    "SamplingConfig",
    "RetrievalConfig",
    "EmbedderConfig",
    "ConsistencyConfig",
    "PromptConfig",
    "Config",
    "load_config",
    "DEFAULT_SYSTEM_PROMPT",
    "sections_from_dict",
    "reject_unknown",
]
