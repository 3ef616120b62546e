"""Generator and embedder backends, chosen by ``generator.backend`` and ``embedder.backend``.

* ``transformers`` (:mod:`ragguard.generation.generators`): in process, the default.
* ``openai`` (:mod:`ragguard.generation.backends.openai`): any OpenAI-compatible server (vLLM, SGLang, TGI,
  llama.cpp server, Ollama, another ``ragguard serve``), through the official ``openai`` client.
* ``vllm`` (:mod:`ragguard.generation.backends.vllm`): vLLM in process on a GPU (``pip install "ragguard[vllm]"``).

Every backend satisfies :class:`ragguard.core.protocols.Generator` (and has ``generate_batch``), so the
pipeline, the audit, ``ragguard serve`` and the LangChain components use them unchanged. Modules
are imported only when their backend is chosen.
"""

from __future__ import annotations

from typing import Any

from ragguard.config import Config, EmbedderConfig

__all__ = ["build_generator", "build_embedder"]


def build_generator(config: Config) -> Any:
    """The generator ``config.generator.backend`` names (weights or connections open lazily)."""
    backend = config.generator.backend
    if backend == "openai":
        from ragguard.generation.backends.openai import OpenAIGenerator

        return OpenAIGenerator(config.generator, config.sampling)
    if backend == "vllm":
        from ragguard.generation.backends.vllm import VLLMGenerator

        return VLLMGenerator(config.generator, config.sampling)
    from ragguard.generation.generators import TransformersGenerator

    return TransformersGenerator.from_config(config.generator, config.sampling)


def build_embedder(config: EmbedderConfig) -> Any:
    """The embedder ``config.backend`` names (loaded lazily)."""
    if config.backend == "openai":
        from ragguard.generation.backends.openai import OpenAIEmbedder

        return OpenAIEmbedder(config)
    from ragguard.generation.embedders import SentenceTransformerEmbedder

    return SentenceTransformerEmbedder(config.model, config.device, config.batch_size)
