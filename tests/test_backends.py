"""Generator backends: dispatch, the openai backend over real loopback HTTP, the vllm backend.

The openai backend is exercised against small OpenAI-compatible stubs (to script 429s, 5xx,
servers without ``n``) and against a real ``ragguard serve`` subprocess (a second ragguard whose
generator is the first: ask, ask_many, the audit and the LangChain component, unchanged).
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from fakes import WordEmbedder
from servers import completion, free_port, openai_stub, ragguard_server

from ragguard.config import Config, EmbedderConfig
from ragguard.errors import ConfigError, GenerationError, ModelLoadError
from ragguard.generation.backends import build_embedder, build_generator
from ragguard.generation.backends.openai import OpenAIEmbedder, OpenAIGenerator
from ragguard.generation.generators import TransformersGenerator
from ragguard.pipeline import RagGuard

KEY = "backend-key"
QUESTION = "How many days of annual leave do I get?"
MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Question: leave?"}]


def openai_config(base_url: str | list[str], **generator: object) -> Config:
    return Config.from_dict({
        "generator": {"backend": "openai", "base_url": base_url, "model": "stub-model", **generator},
        "retrieval": {"top_k": 0},
    })


def generator_for(base_url: str | list[str], **generator: object) -> OpenAIGenerator:
    gen = build_generator(openai_config(base_url, **generator))
    assert isinstance(gen, OpenAIGenerator)
    return gen


def seed_echo(body: dict, hit: int) -> tuple[int, dict, dict]:
    """Answers 'seed=S i=I' per choice (or 'greedy'), so tests see which request made which text."""
    if body.get("temperature") == 0.0:
        return 200, completion(["greedy"]), {}
    return 200, completion([f"seed={body['seed']} i={i}" for i in range(body.get("n", 1))]), {}


# ------------------------------------------------------------------ config and dispatch
def test_new_generator_keys_keep_the_default_hash_and_count_once_set() -> None:
    default = Config()
    # The hash is what it was before these keys existed: the same digest without them.
    data = default.to_dict()
    for key in ("base_url", "api_key_env", "request_mode", "concurrency", "timeout", "max_retries",
                "sampling_extensions", "gpu_memory_utilization", "max_model_len"):
        del data["generator"][key]
    for key in ("backend", "base_url", "api_key_env"):
        del data["embedder"][key]
    for section in ("generator", "retrieval", "consistency"):  # keys of other features, also hashed only when set
        for f in dataclasses.fields(type(getattr(default, section))):
            if f.metadata.get("hashed_when_set"):
                data[section].pop(f.name, None)
    blob = json.dumps(data, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    assert default.hash() == hashlib.sha256(blob.encode()).hexdigest()[:16] == "1b3387007c168501"
    assert Config.from_dict({"generator": {"concurrency": 8}}).hash() == default.hash()  # the default value
    assert Config.from_dict({"generator": {"concurrency": 4}}).hash() != default.hash()
    assert Config.from_dict({"embedder": {"backend": "sentence-transformers"}}).hash() == default.hash()
    cfg = openai_config(["http://a:1/v1", "http://b:2/v1"])
    assert cfg.generator.base_url == ("http://a:1/v1", "http://b:2/v1")
    hash(cfg.generator)  # a frozen config stays hashable (LangChain keys pipelines by it)


@pytest.mark.parametrize(
    ("generator", "field"),
    [
        ({"backend": "tgi"}, "generator.backend"),
        ({"backend": "openai"}, "generator.base_url"),
        ({"backend": "openai", "base_url": "localhost:8000"}, "generator.base_url"),
        ({"backend": "openai", "base_url": []}, "generator.base_url"),
        ({"backend": "openai", "base_url": ["http://a/v1", 3]}, "generator.base_url"),
        ({"request_mode": "many"}, "generator.request_mode"),
        ({"concurrency": 0}, "generator.concurrency"),
        ({"timeout": 0}, "generator.timeout"),
        ({"max_retries": -1}, "generator.max_retries"),
        ({"gpu_memory_utilization": 1.5}, "generator.gpu_memory_utilization"),
    ],
)
def test_bad_backend_settings_name_the_key(generator: dict, field: str) -> None:
    with pytest.raises(ConfigError, match=f"'{field}'"):
        Config.from_dict({"generator": generator})


def test_openai_embedder_needs_a_url() -> None:
    with pytest.raises(ConfigError, match="'embedder.base_url'"):
        Config.from_dict({"embedder": {"backend": "openai"}})


def test_build_generator_and_embedder_follow_the_backend() -> None:
    assert isinstance(build_generator(Config()), TransformersGenerator)
    gen = generator_for("http://127.0.0.1:9/v1", adapter="hr-lora")
    assert gen.served_model == "hr-lora" and gen.name == "stub-model" and gen.adapter == "hr-lora"
    emb = build_embedder(EmbedderConfig(model="bge", backend="openai", base_url="http://127.0.0.1:9/v1"))
    assert isinstance(emb, OpenAIEmbedder) and emb.name == "bge"


def test_served_names_are_not_resolved_as_paths(tmp_path: Path) -> None:
    (tmp_path / "hr-lora").mkdir()  # a folder of that name must not turn the served name into a path
    path = tmp_path / "remote.yaml"
    path.write_text("generator:\n  backend: openai\n  base_url: http://127.0.0.1:8000/v1\n  model: Qwen/Qwen2.5-0.5B-Instruct\n"
                    "  adapter: hr-lora\n", encoding="utf-8")
    from ragguard.config import load_config

    g = load_config(path).generator
    assert (g.model, g.adapter) == ("Qwen/Qwen2.5-0.5B-Instruct", "hr-lora")


# ------------------------------------------------------------------ the openai backend on stubs
def test_per_seed_mode_sends_one_request_per_seed_and_keeps_the_order() -> None:
    with openai_stub(seed_echo) as (url, received):
        gen = generator_for(url, request_mode="per_seed")
        out = gen.generate(MESSAGES, [None, 11, 22, 33])
    assert [c.text for c in out] == ["greedy", "seed=11 i=0", "seed=22 i=0", "seed=33 i=0"]
    assert [c.seed for c in out] == [None, 11, 22, 33]
    assert sorted(r["n"] for r in received) == [1, 1, 1, 1]
    greedy = next(r for r in received if r["temperature"] == 0.0)
    assert "seed" not in greedy and greedy["messages"] == MESSAGES and greedy["model"] == "stub-model"
    sampled = [r for r in received if r["temperature"] != 0.0]
    assert {r["seed"] for r in sampled} == {11, 22, 33}
    assert all(r["top_p"] == 0.9 and r["top_k"] == 50 and r["repetition_penalty"] == 1.1 for r in sampled)
    assert all(r["max_tokens"] == 64 for r in received)


def test_n_mode_sends_one_request_with_n_and_the_first_seed() -> None:
    with openai_stub(seed_echo) as (url, received):
        gen = generator_for(url, request_mode="n", sampling_extensions=False)
        out = gen.generate(MESSAGES, [None, 11, 22, 33])
    assert [c.text for c in out] == ["greedy", "seed=11 i=0", "seed=11 i=1", "seed=11 i=2"]
    assert sorted((r["n"], r.get("seed")) for r in received) == [(1, None), (3, 11)]
    assert all("top_k" not in r and "repetition_penalty" not in r for r in received)


@pytest.mark.parametrize("refusal", ["one choice", "400"])
def test_auto_mode_falls_back_to_one_request_per_seed(refusal: str) -> None:
    def no_n(body: dict, hit: int) -> tuple[int, dict, dict]:
        if body.get("n", 1) > 1:
            if refusal == "400":
                return 400, {"error": {"message": "n > 1 is not supported", "type": "invalid_request_error"}}, {}
            return 200, completion(["only one"]), {}
        return seed_echo(body, hit)

    with openai_stub(no_n) as (url, received):
        gen = generator_for(url)
        first = gen.generate(MESSAGES, [None, 11, 22])
        count = len(received)
        second = gen.generate(MESSAGES, [None, 11, 22])
    assert [c.text for c in first] == ["greedy", "seed=11 i=0", "seed=22 i=0"] == [c.text for c in second]
    assert gen._modes == {url: "per_seed"}
    assert len(received) - count == 3  # learnt: no n request the second time


def test_n_mode_refuses_a_server_that_ignores_n() -> None:
    with openai_stub(lambda body, hit: (200, completion(["only one"]), {})) as (url, _):
        gen = generator_for(url, request_mode="n")
        with pytest.raises(GenerationError, match="request_mode: per_seed"):
            gen.generate(MESSAGES, [11, 22])


def test_round_robin_over_several_servers() -> None:
    with openai_stub(seed_echo) as (a, hits_a), openai_stub(seed_echo) as (b, hits_b):
        gen = generator_for([a, b], request_mode="per_seed", concurrency=1)
        out = gen.generate(MESSAGES, [1, 2, 3, 4])
    assert [c.text for c in out] == [f"seed={s} i=0" for s in (1, 2, 3, 4)]
    assert len(hits_a) == len(hits_b) == 2
    assert "openai-compatible server" in gen.device and a in gen.device and b in gen.device


def test_429_and_5xx_are_retried_with_backoff() -> None:
    def flaky(body: dict, hit: int) -> tuple[int, dict, dict]:
        if hit == 1:
            return 429, {"error": {"message": "slow down"}}, {"Retry-After": "0"}
        if hit == 2:
            return 503, {"error": {"message": "busy"}}, {"Retry-After": "0"}
        return seed_echo(body, hit)

    with openai_stub(flaky) as (url, received):
        out = generator_for(url, max_retries=3).generate(MESSAGES, [5])
    assert out[0].text == "seed=5 i=0" and len(received) == 3


def test_exhausted_retries_give_one_line() -> None:
    def down(body: dict, hit: int) -> tuple[int, dict, dict]:
        return 503, {"error": {"message": "overloaded"}}, {"Retry-After": "0"}

    with openai_stub(down) as (url, received):
        with pytest.raises(GenerationError) as info:
            generator_for(url, max_retries=1).generate(MESSAGES, [5])
    message = str(info.value)
    assert "503" in message and "overloaded" in message and "after 1 retries" in message and "\n" not in message
    assert len(received) == 2


def test_connection_refused_is_one_clear_line() -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    with pytest.raises(GenerationError) as info:
        generator_for(url, max_retries=0).generate(MESSAGES, [None])
    message = str(info.value)
    assert message.startswith(f"cannot connect to the OpenAI-compatible server at {url}")
    assert "generator.base_url" in message and "\n" not in message


def test_openai_embedder_normalises_and_keeps_order() -> None:
    def embeddings(body: dict, hit: int) -> tuple[int, dict, dict]:
        assert body["_path"] == "/v1/embeddings"
        data = [{"object": "embedding", "index": i, "embedding": [float(len(t)), 1.0, 0.0]}
                for i, t in enumerate(body["input"])]
        return 200, {"object": "list", "data": list(reversed(data)), "model": body["model"]}, {}

    with openai_stub(embeddings) as (url, received):
        emb = OpenAIEmbedder(EmbedderConfig(model="bge", backend="openai", base_url=url, batch_size=2))
        vectors = emb.embed(["a", "bbb", "cccc"])
        assert emb.dimension == 3 and emb.embed([]).shape == (0, 3)
    assert [len(r["input"]) for r in received] == [2, 1]
    expected = np.array([[1, 1, 0], [3, 1, 0], [4, 1, 0]], dtype=np.float32)
    np.testing.assert_allclose(vectors, expected / np.linalg.norm(expected, axis=1, keepdims=True), rtol=1e-6)


# ------------------------------------------------------------------ token log-probabilities
def scored_echo(body: dict, hit: int) -> tuple[int, dict, dict]:
    """seed_echo with log-probabilities when asked: choice i of seed S scores -(S + i)/100 per word."""
    status, payload, headers = seed_echo(body, hit)
    if not body.get("logprobs"):
        return status, payload, headers
    texts = [c["message"]["content"] for c in payload["choices"]]
    base = 0 if body.get("temperature") == 0.0 else body["seed"]
    return status, completion(texts, [[-(base + i) / 100] * len(t.split()) for i, t in enumerate(texts)]), headers


def test_openai_backend_asks_for_logprobs_and_carries_them() -> None:
    with openai_stub(scored_echo) as (url, received):
        out = generator_for(url, request_mode="n").generate(MESSAGES, [None, 11, 22])
    assert all(r["logprobs"] is True and "top_logprobs" not in r for r in received)
    assert [c.text for c in out] == ["greedy", "seed=11 i=0", "seed=11 i=1"]
    assert [c.token_logprobs for c in out] == [(0.0,), (-0.11, -0.11), (-0.12, -0.12)]


def test_openai_backend_without_logprobs_in_the_reply_records_none() -> None:
    with openai_stub(seed_echo) as (url, received):  # answers, never with logprobs
        out = generator_for(url, request_mode="per_seed").generate(MESSAGES, [None, 11])
    assert all(r["logprobs"] is True for r in received)
    assert [c.text for c in out] == ["greedy", "seed=11 i=0"] and [c.token_logprobs for c in out] == [None, None]

    def odd(body: dict, hit: int) -> tuple[int, dict, dict]:  # a value JSON cannot hold as a number
        payload = completion(["greedy"], [[-0.5, -1.0]])
        payload["choices"][0]["logprobs"]["content"][1]["logprob"] = None
        return 200, payload, {}

    with openai_stub(odd) as (url, _):
        assert generator_for(url).generate(MESSAGES, [None])[0].token_logprobs is None


def test_a_server_refusing_logprobs_is_asked_without_them_from_then_on() -> None:
    def refuses(body: dict, hit: int) -> tuple[int, dict, dict]:
        if "logprobs" in body:
            return 400, {"error": {"message": "logprobs is not supported", "type": "invalid_request_error"}}, {}
        return seed_echo(body, hit)

    with openai_stub(refuses) as (url, received):
        gen = generator_for(url, request_mode="per_seed")
        first = gen.generate(MESSAGES, [None, 11])
        count = len(received)
        second = gen.generate(MESSAGES, [None, 11])
    assert [c.text for c in first] == ["greedy", "seed=11 i=0"] == [c.text for c in second]
    assert all(c.token_logprobs is None for c in first + second)
    assert gen._no_logprobs == {url}
    assert len(received) - count == 2 and all("logprobs" not in r for r in received[count:])


def test_logprobs_of_the_openai_backend_reach_the_record() -> None:
    with openai_stub(scored_echo) as (url, _):
        cfg = openai_config(url, request_mode="per_seed").replace("sampling", samples=3)
        record = RagGuard(cfg, build_generator(cfg), WordEmbedder()).ask(QUESTION).to_dict()
    samples = record["samples"]
    assert samples[0]["greedy"] and [s["logprob_mean"] for s in samples] == [0.0] + [-s["seed"] / 100 for s in samples[1:]]
    assert all(s["logprob_min"] == s["logprob_mean"] and s["tokens"] == len(s["text"].split()) for s in samples)
    assert isinstance(record["semantic_entropy_weighted"], float)


# ------------------------------------------------------------------ against a real ragguard server
@pytest.fixture(scope="module")
def served() -> str:
    with ragguard_server(["--guard", "serve_fakes:build_guard", "--max-wait-ms", "20"],
                         env={"RAGGUARD_API_KEY": KEY}) as url:
        yield f"{url}/v1"


@pytest.fixture
def remote_guard(served: str, monkeypatch: pytest.MonkeyPatch) -> RagGuard:
    monkeypatch.setenv("RAGGUARD_TEST_KEY", KEY)
    cfg = Config.from_dict({
        "generator": {"backend": "openai", "base_url": served, "model": "ragguard", "api_key_env": "RAGGUARD_TEST_KEY"},
        "sampling": {"samples": 3},
        "retrieval": {"top_k": 0},
    })
    return RagGuard(cfg, build_generator(cfg), WordEmbedder())


def test_a_second_ragguard_asks_through_the_first(remote_guard: RagGuard, served: str) -> None:
    report = remote_guard.ask(QUESTION)
    assert len(report.samples) == 3 and report.answer
    assert report.fingerprint.model == "ragguard" and served in report.fingerprint.device
    # ragguard serve answers one voted answer (n must be 1): auto switched to one request per seed.
    assert remote_guard.generator._modes == {served: "per_seed"}
    together = remote_guard.ask_many([QUESTION, "How do I connect to the VPN?"])
    assert together[0].to_dict()["samples"] == report.to_dict()["samples"]
    alone = remote_guard.ask("How do I connect to the VPN?")
    assert together[1].to_dict()["samples"] == alone.to_dict()["samples"]


def test_the_audit_runs_unchanged_over_the_openai_backend(remote_guard: RagGuard, tmp_path: Path) -> None:
    from ragguard.apps.audit import run_audit

    questions = tmp_path / "q.jsonl"
    questions.write_text("\n".join(json.dumps({"id": f"q{i}", "question": q}) for i, q in enumerate(
        [QUESTION, "How do I connect to the VPN?", "Do I need an employment certificate?"])) + "\n", encoding="utf-8")
    result = run_audit(questions, tmp_path / "out", remote_guard, batch_questions=3)
    records = [json.loads(line) for line in (tmp_path / "out" / "results.jsonl").read_text().splitlines()]
    assert [r["id"] for r in records] == ["q0", "q1", "q2"]
    assert all(r["status"] == "ok" and len(r["samples"]) == 3 for r in records), records
    assert result.summary["errors"] == 0


def test_langchain_chat_model_runs_unchanged_over_the_openai_backend(remote_guard: RagGuard) -> None:
    pytest.importorskip("langchain_core")
    from ragguard.integrations.langchain import ChatRagGuard

    chat = ChatRagGuard(guard=remote_guard)
    message = chat.invoke(QUESTION)
    assert message.content == message.response_metadata["answer"]
    hotter = chat.invoke(QUESTION, temperature=0.9, samples=2)
    assert len(hotter.response_metadata["samples"]) == 2
    assert remote_guard.generator.sampling.temperature == 0.5  # the per-call copy left the shared one alone


def test_wrong_key_and_unknown_model_are_clear(served: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAGGUARD_TEST_KEY", "wrong")
    gen = generator_for(served, model="ragguard", api_key_env="RAGGUARD_TEST_KEY", max_retries=0)
    with pytest.raises(GenerationError, match=r"refused the API key \(401\): check \$RAGGUARD_TEST_KEY"):
        gen.generate(MESSAGES, [None])
    monkeypatch.setenv("RAGGUARD_TEST_KEY", KEY)
    gen = generator_for(served, model="no-such-model", api_key_env="RAGGUARD_TEST_KEY", max_retries=0)
    with pytest.raises(ModelLoadError) as info:
        gen.generate(MESSAGES, [None])
    message = str(info.value)
    assert "404" in message and "it serves 'ragguard', 'simulated'" in message and "\n" not in message


# ------------------------------------------------------------------ the vllm backend
def test_vllm_backend_refuses_the_embedded_gguf_model() -> None:
    with pytest.raises(ModelLoadError, match="backend: transformers"):
        build_generator(Config.from_dict({"generator": {"backend": "vllm"}}))


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vllm is installed")
def test_vllm_backend_without_vllm_says_how_to_install() -> None:
    gen = build_generator(Config.from_dict({"generator": {"backend": "vllm", "model": "Qwen/Qwen2.5-0.5B-Instruct"}}))
    with pytest.raises(ModelLoadError, match=r'pip install "ragguard\[vllm\]"'):
        gen.generate(MESSAGES, [None])


def test_vllm_lora_rank_fits_the_adapter(tmp_path: Path) -> None:
    from ragguard.generation.backends.vllm import lora_rank

    for r, expected in [(4, 8), (16, 16), (24, 32), (64, 64)]:
        (tmp_path / "adapter_config.json").write_text(json.dumps({"r": r}), encoding="utf-8")
        assert lora_rank(str(tmp_path)) == expected
    with pytest.raises(ModelLoadError, match="adapter_config.json"):
        lora_rank(str(tmp_path / "missing"))


def _fake_vllm(monkeypatch: pytest.MonkeyPatch, calls: list) -> None:
    """A stand-in ``vllm`` module: each request answers its seed's words, each scored -(position + 1)/10.

    Answers of even seeds (and the greedy one) end on the end-of-sequence token (id 2), as vLLM's
    token ids do when a row stops on it.
    """
    import sys
    import types

    class SamplingParams:
        def __init__(self, **kwargs: object) -> None:
            self.__dict__.update(kwargs)

    class Logprob:
        def __init__(self, logprob: float) -> None:
            self.logprob = logprob

    class LLM:
        def __init__(self, **kwargs: object) -> None:
            calls.append(("LLM", kwargs))

        def get_tokenizer(self) -> object:
            return types.SimpleNamespace(apply_chat_template=lambda m, **kw: m[-1]["content"])

        def generate(self, prompts: list, params: list, **kwargs: object) -> list:
            calls.append(("generate", params))
            outs = []
            for p in params:
                seed = getattr(p, "seed", None)
                ids = [10, 11, 12] + ([2] if seed is None or seed % 2 == 0 else [])
                steps = [{t: Logprob(-(j + 1) / 10), 99: Logprob(-9.0)} for j, t in enumerate(ids)]
                if seed == 5:
                    steps = None  # a request without log-probabilities
                text = "greedy" if seed is None else f"seed {seed}"
                output = types.SimpleNamespace(text=text, token_ids=ids, logprobs=steps)
                outs.append(types.SimpleNamespace(outputs=[output]))
            return outs

    vllm = types.ModuleType("vllm")
    vllm.LLM, vllm.SamplingParams = LLM, SamplingParams  # type: ignore[attr-defined]
    lora = types.ModuleType("vllm.lora")
    request = types.ModuleType("vllm.lora.request")
    request.LoRARequest = object  # type: ignore[attr-defined]
    for name, module in (("vllm", vllm), ("vllm.lora", lora), ("vllm.lora.request", request)):
        monkeypatch.setitem(sys.modules, name, module)


def test_vllm_backend_asks_for_logprobs_and_carries_them(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list = []
    _fake_vllm(monkeypatch, calls)
    gen = build_generator(Config.from_dict({"generator": {"backend": "vllm", "model": "Qwen/Qwen2.5-0.5B-Instruct"}}))
    out = gen.generate_batch([MESSAGES, MESSAGES], [[None, 3], [4, 5]])
    params = next(c[1] for c in calls if c[0] == "generate")
    assert [p.logprobs for p in params] == [1, 1, 1, 1]
    assert [[c.text for c in row] for row in out] == [["greedy", "seed 3"], ["seed 4", "seed 5"]]
    assert [[c.seed for c in row] for row in out] == [[None, 3], [4, 5]]
    assert out[0][0].token_logprobs == (-0.1, -0.2, -0.3, -0.4)  # stopped on EOS: its log-prob too
    assert out[0][1].token_logprobs == (-0.1, -0.2, -0.3)
    assert out[1][0].token_logprobs == (-0.1, -0.2, -0.3, -0.4) and out[1][1].token_logprobs is None


def _cuda() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:  # pragma: no cover
        return False


@pytest.mark.gpu
@pytest.mark.skipif(importlib.util.find_spec("vllm") is None or not _cuda(), reason="needs vllm and a CUDA GPU")
def test_vllm_backend_samples_depend_on_their_seed_alone(tmp_path: Path) -> None:
    """A tiny random Qwen2 saved locally (no download): per-row seeds, batch invariance, greedy repeatable."""
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

    tokenizer_source = tmp_path / "model"
    config = Qwen2Config(vocab_size=151936, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048)
    Qwen2ForCausalLM(config).save_pretrained(tokenizer_source)
    try:
        AutoTokenizer.from_pretrained("Qwen/Qwen2.5-0.5B-Instruct").save_pretrained(tokenizer_source)
    except Exception:  # noqa: BLE001 - no hub access: nothing to test with
        pytest.skip("needs a Qwen2 tokenizer (hub cache)")
    cfg = Config.from_dict({"generator": {"backend": "vllm", "model": str(tokenizer_source), "dtype": "float16",
                                          "gpu_memory_utilization": 0.3, "max_model_len": 512},
                            "sampling": {"max_new_tokens": 8}})
    gen = build_generator(cfg)
    alone = gen.generate(MESSAGES, [None, 1, 2])
    other = [{"role": "user", "content": "Question: something else entirely?"}]
    batched = gen.generate_batch([other, MESSAGES], [[3], [None, 2, 1]])
    assert [c.text for c in batched[1]] == [alone[0].text, alone[2].text, alone[1].text]


def test_the_ray_example_stages_run_without_ray(served: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """examples/ray_audit.py's two stages, called as Ray would call them, against a real server."""
    spec = importlib.util.spec_from_file_location("ray_audit", Path(__file__).parents[1] / "examples" / "ray_audit.py")
    assert spec is not None and spec.loader is not None
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    sample = example.SampleAnswers(endpoints=[served, served], model="ragguard", samples=3, seed=0, index=None)
    score = example.ScoreAnswers(embedder=WordEmbedder())
    row = score(sample({"id": "q1", "question": QUESTION}))
    assert row["status"] == "ok" and row["verdict"] in {"consistent", "inconsistent", "contradiction", "abstain"}
    record = json.loads(row["record"])
    assert [s["greedy"] for s in record["samples"]] == [True, False, False]
    assert record["samples"][1]["seed"] is not None
    down = example.SampleAnswers(endpoints=[f"http://127.0.0.1:{free_port()}/v1"], model="ragguard", samples=2,
                                 seed=0, index=None, max_retries=0)
    failed = score(down({"id": "q2", "question": QUESTION}))
    assert failed["status"] == "error" and "cannot connect" in failed["error"]


# ------------------------------------------------------------------ the command line with other backends
def _hashed_vector(text: str, dim: int = 8) -> list[float]:
    out = [0.0] * dim
    for word in text.lower().split():
        out[int(hashlib.sha256(word.encode()).hexdigest(), 16) % dim] += 1.0
    return out


def test_index_build_and_search_through_an_embeddings_server(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from ragguard.apps.cli import app
    from ragguard.retrieval.index import KnowledgeIndex

    def embeddings(body: dict, hit: int) -> tuple[int, dict, dict]:
        data = [{"object": "embedding", "index": i, "embedding": _hashed_vector(t)} for i, t in enumerate(body["input"])]
        return 200, {"object": "list", "data": data, "model": body["model"]}, {}

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "leave.md").write_text("# Leave\n\nEvery employee gets 25 days of annual leave.\n", encoding="utf-8")
    (docs / "vpn.md").write_text("# VPN\n\nConnect with the VPN client and your hardware token.\n", encoding="utf-8")
    with openai_stub(embeddings) as (url, received):
        config = tmp_path / "remote-embedder.yaml"
        config.write_text(f"embedder:\n  backend: openai\n  base_url: {url}\n  model: served-embedder\n", encoding="utf-8")
        runner = CliRunner()
        built = runner.invoke(app, ["index", "build", str(docs), "--out", str(tmp_path / "idx"), "--config", str(config)])
        assert built.exit_code == 0, built.output
        found = runner.invoke(app, ["index", "search", str(tmp_path / "idx"), "VPN hardware token", "--config",
                                    str(config), "--json"])
        assert found.exit_code == 0, found.output
    assert KnowledgeIndex.load(tmp_path / "idx").embedder_name == "served-embedder"
    assert json.loads(found.stdout)["results"][0]["doc_id"].endswith("vpn.md")
    assert all(r["_path"] == "/v1/embeddings" and r["model"] == "served-embedder" for r in received)


def test_doctor_refuses_a_served_model_with_one_line(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from ragguard.apps.cli import app

    config = tmp_path / "remote.yaml"
    config.write_text("generator:\n  backend: openai\n  base_url: http://127.0.0.1:9/v1\n  model: m\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["doctor", "--config", str(config)])
    assert result.exit_code == 2
    assert "doctor examines in-process transformers models" in result.output


def test_openai_backend_marks_answers_cut_at_max_tokens() -> None:
    def cut(body: dict, hit: int) -> tuple[int, dict, dict]:
        if "seed" not in body:
            return 200, completion(["a full answer."]), {}
        payload = completion(["an answer cut in the"])
        payload["choices"][0]["finish_reason"] = "length"
        return 200, payload, {}

    with openai_stub(cut) as (url, _):
        out = generator_for(url, request_mode="per_seed").generate(MESSAGES, [None, 11])
    assert [c.truncated for c in out] == [False, True]
