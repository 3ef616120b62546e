"""The batched greedy + seeded decode loop, on tiny random models (no download)."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from ragguard.config import SamplingConfig  # noqa: E402
from ragguard.generation.decoding import cache_keyword, cache_of  # noqa: E402
from ragguard.generation.generators import TransformersGenerator, _candidates  # noqa: E402

EOS = 2


class TinyTokenizer:
    """Just enough tokenizer for the decode loop: ids are their own text."""

    eos_token_id = EOS
    unk_token_id = 0
    chat_template = None

    def convert_tokens_to_ids(self, token: str) -> int:
        return self.unk_token_id

    def decode(self, ids: list[int], skip_special_tokens: bool = True) -> str:
        return " ".join(str(i) for i in ids if not (skip_special_tokens and i == EOS))

    def __call__(self, text: str) -> dict[str, list[int]]:
        return {"input_ids": [3 + (ord(c) % 60) for c in text]}


def tiny_model(kind: str):
    torch.manual_seed(0)
    common = dict(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                  eos_token_id=EOS, pad_token_id=EOS)
    if kind == "qwen2":
        config = transformers.Qwen2Config(**common)
        model = transformers.Qwen2ForCausalLM(config)
    else:
        config = transformers.LlamaConfig(**common)
        model = transformers.LlamaForCausalLM(config)
    return model.eval()


def make(kind: str = "llama", **sampling) -> TransformersGenerator:
    settings = SamplingConfig(**{"max_new_tokens": 12, "temperature": 1.0, "top_k": 0, "top_p": 1.0,
                                 "repetition_penalty": 1.0, **sampling})
    return TransformersGenerator.from_model(tiny_model(kind), TinyTokenizer(), settings, name=f"tiny-{kind}")


PROMPT = [5, 9, 14, 22, 7, 31]


@pytest.mark.parametrize("kind", ["llama", "qwen2"])
def test_greedy_row_matches_transformers_generate(kind: str) -> None:
    gen = make(kind)
    ours = gen.generate_tokens(PROMPT, [None], ignore_stop=True)[0]
    ids = torch.tensor([PROMPT])
    ref = gen.model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=12, min_new_tokens=12,
                             do_sample=False, eos_token_id=None)
    assert ours == ref[0, len(PROMPT):].tolist()


def test_seeded_rows_are_reproducible_and_differ_between_seeds() -> None:
    gen = make()
    a = gen.generate_tokens(PROMPT, [None, 11, 22, 33], ignore_stop=True)
    b = gen.generate_tokens(PROMPT, [None, 11, 22, 33], ignore_stop=True)
    assert a == b
    assert len({tuple(r) for r in a[1:]}) == 3, "different seeds must give different samples at temperature 1"


def test_a_sample_depends_only_on_its_own_seed() -> None:
    gen = make()
    together = gen.generate_tokens(PROMPT, [None, 11, 22, 33], ignore_stop=True)
    alone = gen.generate_tokens(PROMPT, [22], ignore_stop=True)
    reordered = gen.generate_tokens(PROMPT, [33, 22, None], ignore_stop=True)
    assert alone[0] == together[2] == reordered[1]
    assert reordered[2] == together[0]


def test_rows_stop_at_eos_and_others_go_on() -> None:
    gen = make(max_new_tokens=40)
    rows = gen.generate_tokens(PROMPT, [None, 1, 2, 3, 4, 5, 6, 7])
    assert all(EOS not in r for r in rows)
    assert all(len(r) <= 40 for r in rows)
    # Stopped rows must match the same seed decoded without stopping, up to where they stopped.
    full = gen.generate_tokens(PROMPT, [None, 1, 2, 3, 4, 5, 6, 7], ignore_stop=True)
    for short, long in zip(rows, full, strict=True):
        assert long[: len(short)] == short


def test_generate_puts_a_model_left_in_train_mode_back_in_eval() -> None:
    gen = make()
    gen.model.train()
    gen.generate_tokens(PROMPT, [None])
    assert not gen.model.training


def test_candidates_keep_top_k_and_nucleus() -> None:
    scores = torch.log(torch.tensor([[0.05, 0.5, 0.15, 0.3]]))
    values, ids = _candidates(scores, 1.0, 2, 1.0)
    assert ids.tolist() == [[1, 3]] and torch.isfinite(values).all()
    values, ids = _candidates(scores, 1.0, 0, 0.75)  # 0.5 + 0.3 reaches 0.75: the rest is dropped
    assert ids.tolist() == [[1, 3, 2, 0]]
    assert torch.isfinite(values[0, :2]).all() and torch.isinf(values[0, 2:]).all()
    cold = torch.softmax(_candidates(scores, 0.1, 0, 1.0)[0], -1)
    assert cold[0, 0] > 0.99


def test_candidates_give_the_distribution_of_the_whole_vocabulary() -> None:
    """Sampling among the top-k candidates draws from the same distribution as warping every token."""
    scores = torch.randn(3, 500, generator=torch.Generator().manual_seed(0)) * 3
    for top_k, top_p in ((50, 0.9), (50, 1.0), (0, 0.9), (7, 0.5)):
        values, ids = _candidates(scores, 0.7, top_k, top_p)
        full = scores / 0.7
        if top_k:
            kth = torch.topk(full, top_k, dim=-1).values[:, -1:]
            full = full.masked_fill(full < kth, float("-inf"))
        order = torch.sort(full, descending=True, dim=-1)
        probs = torch.softmax(order.values, -1)
        full_sorted = order.values.masked_fill(probs.cumsum(-1) - probs >= top_p, float("-inf"))
        expected = torch.zeros_like(scores).scatter(1, order.indices, torch.softmax(full_sorted, -1))
        got = torch.zeros_like(scores).scatter(1, ids, torch.softmax(values, -1))
        assert torch.allclose(got, expected, atol=1e-6), (top_k, top_p)


def test_repetition_penalty_changes_greedy_path() -> None:
    plain = make().generate_tokens(PROMPT, [None], ignore_stop=True)[0]
    penalised = make(repetition_penalty=5.0).generate_tokens(PROMPT, [None], ignore_stop=True)[0]
    assert plain != penalised


@pytest.mark.parametrize("kind", ["llama", "qwen2"])
def test_prompt_in_a_padded_batch_matches_the_prompt_alone(kind: str) -> None:
    gen = make(kind)
    seeds = [None, 11, 22]
    alone = gen.generate_tokens(PROMPT, seeds, ignore_stop=True)
    longer = [40, 41, 42, 43, 44, 45, 46, 47, 48, 49, 50]
    shorter = [8, 9]
    batch = gen.generate_tokens_batch([longer, PROMPT, shorter], [[None, 5], seeds, [7]], ignore_stop=True)
    assert batch[1] == alone
    assert batch[0][0] == gen.generate_tokens(longer, [None], ignore_stop=True)[0]
    assert batch[2][0] == gen.generate_tokens(shorter, [7], ignore_stop=True)[0]


def test_generate_batch_rejects_mismatched_seed_lists() -> None:
    with pytest.raises(ValueError):
        make().generate_tokens_batch([PROMPT, PROMPT], [[None]])


@pytest.mark.parametrize("kind", ["llama", "qwen2"])
def test_decoding_modes_give_the_tokens_of_plain_transformers(kind: str) -> None:
    """Preallocated cache, shared-prefix attention and small-batch linear change speed, not tokens."""
    from ragguard.generation import decoding

    gen = make(kind, max_new_tokens=40)
    prompts = [PROMPT, PROMPT[:3], [8, 8, 9], [4, 5, 6, 7, 8, 9, 10, 11]]
    seeds = [[None, 1, 2, 3], [4, None], [5, 6, 7], [8]]
    modes = {"default": (True, True, True), "no sharing": (True, False, True), "no linear": (True, True, False),
             "plain": (False, False, False)}
    got = {}
    for name, (preallocate, share, small) in modes.items():
        gen.preallocate_cache, gen.share_prefix = preallocate, share
        decoding.speed_up_small_batches(gen.model, on=small)
        # rows stop at EOS and leave the batch (prompts drop out of the shared prefix); then full length
        got[name] = (gen.generate_tokens_batch(prompts, seeds), gen.generate_tokens_batch(prompts, seeds, ignore_stop=True))
    assert any(len(row) < 40 for rows in got["plain"][0] for row in rows)  # some rows did stop early
    for name in modes:
        assert got[name] == got["plain"], name


def plain_and_shared(model, prompts: list[list[int]], rows: list[int]) -> tuple:  # type: ignore[no-untyped-def]
    """The prompts left-padded and prefilled twice: one cache repeated per row, one shared."""
    from ragguard.generation import decoding

    width = max(len(p) for p in prompts)
    ids = torch.tensor([[EOS] * (width - len(p)) + p for p in prompts])
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    index = torch.tensor(rows)
    with torch.inference_mode():
        plain = cache_of(model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True))
        plain.batch_select_indices(index)
        prefill = cache_of(model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True))
    assert decoding.can_share_prefix(model, prefill, rows_per_prompt=2)
    return model, mask[index], decoding.share_prefix(model, prefill, index, mask, room=4), plain


@pytest.mark.parametrize("kind", ["llama", "qwen2"])
def test_shared_prefix_attention_matches_attention_over_repeated_caches(kind: str) -> None:
    """Logits of every step agree with the plain path, also after rows and whole prompts leave the batch."""
    from ragguard.generation import decoding

    prompts = [PROMPT, [8, 9], [4, 5, 6, 7, 8, 9, 10, 11]]
    rows = [0, 0, 0, 1, 1, 2]
    model, row_mask, shared, plain = plain_and_shared(tiny_model(kind), prompts, rows)
    next_pos = row_mask.sum(-1)
    tokens = torch.tensor([[11], [12], [13], [14], [15], [16]])
    keeps = [None, torch.tensor([0, 2, 3, 4, 5]), torch.tensor([0, 1, 4]), None, None, None]  # 2nd drops prompt 1
    with torch.inference_mode():
        for keep in keeps:  # 6 steps: the shared cache's room of 4 has to grow
            if keep is not None:
                shared.select_rows(keep)
                plain.batch_select_indices(keep)
                row_mask, next_pos, tokens = row_mask[keep], next_pos[keep], tokens[keep]
            row_mask = torch.cat([row_mask, torch.ones_like(tokens)], dim=1)
            expected = model(input_ids=tokens, attention_mask=row_mask, position_ids=next_pos[:, None],
                             use_cache=True, **{cache_keyword(model): plain}).logits
            got = model(input_ids=tokens, position_ids=next_pos[:, None], **{cache_keyword(model): shared.cache},
                        use_cache=True, shared_prefix=shared).logits
            assert torch.allclose(got, expected, atol=1e-5), (kind, keep)
            next_pos, tokens = next_pos + 1, (tokens * 7 + 3) % 60 + 3
    assert shared.rows.prompts == 2 and model.config._attn_implementation == decoding.ATTENTION_NAME


def test_shared_prefix_needs_several_rows_of_one_prompt_and_a_plain_family() -> None:
    from ragguard.generation import decoding

    model = tiny_model("llama")
    with torch.inference_mode():
        cache = cache_of(model(input_ids=torch.tensor([PROMPT]), use_cache=True))
    assert decoding.can_share_prefix(model, cache, rows_per_prompt=2)
    assert not decoding.can_share_prefix(model, cache, rows_per_prompt=1)  # nothing to share: the plain path
    model.config.model_type = "gemma2"  # soft-capped attention: not this softmax
    assert not decoding.can_share_prefix(model, cache, rows_per_prompt=2)


def test_small_batch_linear_computes_nn_linear() -> None:
    from ragguard.generation import decoding

    layer = torch.nn.Linear(24, 40)
    plain = torch.nn.Linear(24, 40)
    plain.load_state_dict(layer.state_dict())
    holder = torch.nn.Sequential(layer)
    assert decoding.speed_up_small_batches(holder) == 1 and "forward" in vars(layer)
    for shape in ((1, 24), (3, 1, 24), (9, 24), (40, 24), (2, 5, 24)):  # below, inside and above 2..32 rows
        x = torch.randn(*shape)
        with torch.inference_mode():
            assert torch.allclose(layer(x), plain(x), atol=1e-5), shape
    x = torch.randn(4, 24, requires_grad=True)
    layer(x).sum().backward()  # with gradients it is nn.Linear's own path
    assert x.grad is not None
    assert decoding.speed_up_small_batches(holder, on=False) == 1 and "forward" not in vars(layer)


def test_roomy_layer_grows_when_its_room_runs_out() -> None:
    from ragguard.generation.decoding import roomy_layer_class as _roomy_layer_class

    keys, values = torch.randn(2, 2, 5, 4), torch.randn(2, 2, 5, 4)
    layer = _roomy_layer_class()(keys, values, room=1)
    expected_k, expected_v = keys, values
    for _ in range(4):  # room for one: the second update must grow the buffer
        k, v = torch.randn(2, 2, 1, 4), torch.randn(2, 2, 1, 4)
        got_k, got_v = layer.update(k, v)
        expected_k, expected_v = torch.cat([expected_k, k], -2), torch.cat([expected_v, v], -2)
        assert torch.equal(got_k, expected_k) and torch.equal(got_v, expected_v)
    assert layer.get_seq_length() == 9
    layer.batch_select_indices(torch.tensor([1]))
    assert torch.equal(layer.keys, expected_k[1:]) and layer.keys.shape == (1, 2, 9, 4)


def test_shared_prefix_runs_in_bfloat16_with_padded_prompts() -> None:
    gen = make("qwen2", max_new_tokens=6)
    gen._model = gen.model.to(torch.bfloat16)
    out = gen.generate_tokens_batch([PROMPT, [8, 9]], [[None, 1, 2], [3, 4]], ignore_stop=True)
    assert [len(r) for rows in out for r in rows] == [6] * 5


def test_pass_tokens_count_a_shared_prompt_once() -> None:
    gen = make("llama")
    assert gen.pass_tokens(600, 6, 64) == 600 + 6 * 64
    assert gen.pass_tokens(600, 1, 64) == 664
    gen.share_prefix = False
    assert gen.pass_tokens(600, 6, 64) == 6 * 664


def test_a_prompt_without_rows_leaves_the_shared_prefix() -> None:
    gen = make("llama", max_new_tokens=8)
    prompts, seeds = [PROMPT, [8, 9], [4, 5, 6]], [[None, 1], [], [2, 3]]
    shared = gen.generate_tokens_batch(prompts, seeds, ignore_stop=True)
    gen.share_prefix = False
    assert shared == gen.generate_tokens_batch(prompts, seeds, ignore_stop=True) and shared[1] == []


def test_prefill_shared_encodes_each_prompt_as_if_alone() -> None:
    """Bit for bit: a prompt's cache and logits in the batch are those of the prompt prefilled alone."""
    from ragguard.generation import decoding

    model = tiny_model("qwen2")
    prompts = [PROMPT, [8, 9], [4, 5, 6, 7, 8, 9, 10, 11]]
    with torch.inference_mode():
        shared, last = decoding.prefill_shared(model, prompts, torch.tensor([0, 0, 1, 2, 2]), room=4)
        for p, prompt in enumerate(prompts):
            alone = model(input_ids=torch.tensor([prompt]), use_cache=True, logits_to_keep=1)
            assert torch.equal(last[p], alone.logits[0, -1])
            layer = shared.cache.layers[1]
            assert torch.equal(layer.prefix_keys[p, :, -len(prompt):], cache_of(alone).layers[1].keys[0])
    assert shared.rows.bias is not None and shared.rows.prompts == 3


def test_shared_and_plain_passes_can_run_in_threads_at_once() -> None:
    """The shared-prefix attention is chosen per call, so concurrent passes on one model do not interfere."""
    from concurrent.futures import ThreadPoolExecutor

    gen = make("llama", max_new_tokens=30)
    shared_job = ([PROMPT, [8, 9]], [[None, 1, 2], [3, 4]])  # several rows per prompt: shared prefix
    plain_job = ([PROMPT, [8, 9], [4, 5, 6]], [[None], [5], [6]])  # one row each: padded batch with a mask
    expected = [gen.generate_tokens_batch(*job, ignore_stop=True) for job in (shared_job, plain_job)]
    with ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(gen.generate_tokens_batch, *job, ignore_stop=True)
                   for _ in range(6) for job in (shared_job, plain_job)]
        got = [f.result() for f in futures]
    assert got == expected * 6


def test_decoding_passes_the_cache_under_the_name_this_transformers_takes() -> None:
    """transformers 5.2x renamed ``past_key_values`` to ``cache`` (the old name warns, then goes in 5.40)."""
    import inspect
    import warnings

    gen = make()
    name = cache_keyword(gen.model)
    assert name in inspect.signature(gen.model.forward).parameters
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for share in (True, False):
            gen.share_prefix = share
            assert len(gen.generate_tokens(PROMPT, [None, 1, 2], ignore_stop=True)) == 3


# ------------------------------------------------------------------ token log-probabilities
def _teacher_forced(model, prompt: list[int], tokens: list[int]) -> list[float]:
    """log_softmax of one plain forward pass over prompt + tokens, at each of the tokens."""
    ids = torch.tensor([list(prompt) + list(tokens)])
    with torch.inference_mode():
        logits = model(input_ids=ids).logits[0].float()
    logp = torch.log_softmax(logits[len(prompt) - 1 : -1], dim=-1)
    return logp.gather(1, torch.tensor(tokens).unsqueeze(1)).squeeze(1).tolist()


@pytest.mark.parametrize("kind", ["llama", "qwen2"])
def test_recorded_logprobs_are_the_teacher_forced_raw_logprobs(kind: str) -> None:
    """Greedy and sampled rows, with a penalty and a temperature that the raw scores must not include."""
    gen = make(kind, max_new_tokens=40, temperature=0.7, top_k=20, top_p=0.9, repetition_penalty=1.3)
    seeds = [None, 1, 2, 3, 4, 5]
    stopped = 0
    for ignore_stop in (False, True):  # rows that stop on EOS, and rows cut at max_new_tokens
        tokens, logprobs = gen.decode_batch([PROMPT], [seeds], ignore_stop=ignore_stop)
        for row, scores in zip(tokens[0], logprobs[0], strict=True):
            assert len(scores) == len(row) + 1 if len(row) < 40 else len(scores) == len(row)
            scored = row + [EOS] if len(scores) == len(row) + 1 else row  # the stop token is scored too
            stopped += len(scored) > len(row)
            assert scores == pytest.approx(_teacher_forced(gen.model, PROMPT, scored), abs=1e-4)
            assert all(v <= 0.0 for v in scores)
        assert tokens == gen.generate_tokens_batch([PROMPT], [seeds], ignore_stop=ignore_stop)  # no token changes
    assert stopped  # some row stopped on EOS and had its stop token scored


@pytest.mark.parametrize("kind", ["llama", "qwen2"])
def test_logprobs_are_the_same_alone_and_in_a_batch_and_in_every_decoding_mode(kind: str) -> None:
    from ragguard.generation import decoding

    gen = make(kind, max_new_tokens=30)
    seeds = [None, 11, 22]
    prompts = [[40, 41, 42, 43, 44, 45, 46, 47, 48, 49, 50], PROMPT, [8, 9]]
    batch_seeds = [[None, 5], seeds, [7]]
    modes = {"default": (True, True, True), "no sharing": (True, False, True), "no linear": (True, True, False),
             "plain": (False, False, False)}
    got = {}
    for name, (preallocate, share, small) in modes.items():
        gen.preallocate_cache, gen.share_prefix = preallocate, share
        decoding.speed_up_small_batches(gen.model, on=small)
        alone = gen.decode_batch([PROMPT], [seeds])
        single = gen.decode_batch([PROMPT], [[22]])  # one row: neither shared prefix nor small-batch linear
        batch = gen.decode_batch(prompts, batch_seeds)
        assert batch[0][1] == alone[0][0] and single[0][0][0] == alone[0][0][2], name
        for a, b in zip(alone[1][0], batch[1][1], strict=True):
            assert a == pytest.approx(b, abs=1e-5), name
        assert single[1][0][0] == pytest.approx(alone[1][0][2], abs=1e-5), name
        got[name] = batch
    for name in modes:
        assert got[name][0] == got["plain"][0], name
        for rows, plain_rows in zip(got[name][1], got["plain"][1], strict=True):
            for a, b in zip(rows, plain_rows, strict=True):
                assert a == pytest.approx(b, abs=1e-5), name


def test_completions_carry_logprobs_and_recording_can_be_turned_off() -> None:
    gen = make(max_new_tokens=10)
    on = gen.generate([{"role": "user", "content": "leave days?"}], [None, 3])
    assert all(c.token_logprobs is not None and len(c.token_logprobs) >= 1 for c in on)
    assert all(isinstance(v, float) for c in on for v in c.token_logprobs)
    gen.record_logprobs = False
    off = gen.generate([{"role": "user", "content": "leave days?"}], [None, 3])
    assert [c.text for c in off] == [c.text for c in on]
    assert all(c.token_logprobs is None for c in off)
    _, none = gen.decode_batch([PROMPT], [[None]], logprobs=False)
    assert none == [[None]]


def test_an_unusable_cache_folder_names_ragguard_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ragguard.errors import ModelLoadError
    from ragguard.generation.sources import _load_gguf_cached

    (tmp_path / "a-file").write_text("not a folder")
    monkeypatch.setenv("RAGGUARD_CACHE", str(tmp_path / "a-file" / "cache"))
    with pytest.raises(ModelLoadError, match="set RAGGUARD_CACHE to a writable folder") as refused:
        _load_gguf_cached(tmp_path, "model.gguf", "ab" * 32)  # refused before any conversion starts
    assert "it is set to" in str(refused.value) and "Not a directory" in str(refused.value)


class _FakePretrained:
    """Stands in for the GGUF tokenizer and model: save_pretrained writes private files, as mkdtemp's folder is."""

    config = type("Cfg", (), {})()
    hf_quantizer = None

    def __init__(self, name: str, fail: BaseException | None = None) -> None:
        self.name, self.fail = name, fail

    def save_pretrained(self, folder: str) -> None:
        if self.fail is not None:
            raise self.fail
        path = Path(folder) / self.name
        path.write_bytes(b"weights" * 1000)
        path.chmod(0o600)


def _fake_gguf(monkeypatch: pytest.MonkeyPatch, fail: BaseException | None = None) -> list[str]:
    import transformers

    converted: list[str] = []

    def model(folder, gguf_file, dtype):  # type: ignore[no-untyped-def]
        converted.append(gguf_file)
        return _FakePretrained("model.safetensors", fail)

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", model)
    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained",
                        lambda folder, gguf_file: _FakePretrained("tokenizer.json"))
    return converted


def test_a_damaged_converted_model_is_converted_again_not_loaded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ragguard.generation.sources import _load_gguf_cached

    monkeypatch.setenv("RAGGUARD_CACHE", str(tmp_path / "cache"))
    converted = _fake_gguf(monkeypatch)
    target = _load_gguf_cached(tmp_path, "model.gguf", "ab" * 32)
    assert converted == ["model.gguf"] and _load_gguf_cached(tmp_path, "model.gguf", "ab" * 32) == target
    assert converted == ["model.gguf"]  # intact: loaded, not converted again
    # readable by other users (a cache warmed as root in a Docker build)
    assert (target.stat().st_mode & 0o777, (target / "model.safetensors").stat().st_mode & 0o777) == (0o755, 0o644)
    weights = target / "model.safetensors"
    damaged = bytearray(weights.read_bytes())
    damaged[100:200] = bytes(100)
    weights.write_bytes(bytes(damaged))  # zeroed in place: same size, another mtime
    assert _load_gguf_cached(tmp_path, "model.gguf", "ab" * 32) == target
    assert converted == ["model.gguf", "model.gguf"] and weights.read_bytes() == b"weights" * 1000


def test_a_stopped_conversion_leaves_no_folder_and_the_next_one_clears_old_leftovers(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import transformers

    from ragguard.generation.sources import _load_gguf_cached

    monkeypatch.setenv("RAGGUARD_CACHE", str(tmp_path / "cache"))
    _fake_gguf(monkeypatch, fail=KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):  # Ctrl-C while saving
        _load_gguf_cached(tmp_path, "model.gguf", "ab" * 32)
    models = tmp_path / "cache" / "models"
    assert [p.name for p in models.iterdir() if p.name.startswith(".convert-")] == []
    name = f"model-{'ab' * 8}-tf{transformers.__version__}"
    (models / f".convert-{name}-killed").mkdir()  # what `kill -9` leaves
    _fake_gguf(monkeypatch)
    _load_gguf_cached(tmp_path, "model.gguf", "ab" * 32)
    assert sorted(p.name for p in models.iterdir() if not p.name.endswith(".lock")) == [name]


def test_no_home_folder_names_ragguard_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    from ragguard.errors import ModelLoadError
    from ragguard.generation.models import cache_dir

    monkeypatch.delenv("RAGGUARD_CACHE", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)

    def no_home() -> Path:
        raise RuntimeError("Could not determine home directory.")

    monkeypatch.setattr(Path, "home", staticmethod(no_home))
    with pytest.raises(ModelLoadError, match="no home folder to keep the model cache in: set RAGGUARD_CACHE"):
        cache_dir()
    monkeypatch.setenv("XDG_CACHE_HOME", "/srv/cache")  # no home is needed then
    assert cache_dir() == Path("/srv/cache/ragguard")


def test_the_cache_folder_follows_ragguard_cache_then_xdg_cache_home_then_home(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ragguard.generation.models import cache_dir

    monkeypatch.setattr(Path, "home", staticmethod(lambda: tmp_path / "home"))
    monkeypatch.delenv("RAGGUARD_CACHE", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    assert cache_dir() == tmp_path / "home" / ".cache" / "ragguard"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/cache")  # the XDG spec says to ignore a relative path
    assert cache_dir() == tmp_path / "home" / ".cache" / "ragguard"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "ragguard"
    monkeypatch.setenv("RAGGUARD_CACHE", str(tmp_path / "mine"))
    assert cache_dir() == tmp_path / "mine"


def test_a_full_disk_while_converting_says_so_and_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import errno

    from ragguard.errors import ModelLoadError
    from ragguard.generation.sources import _load_gguf_cached

    monkeypatch.setenv("RAGGUARD_CACHE", str(tmp_path / "cache"))
    _fake_gguf(monkeypatch, fail=OSError(errno.ENOSPC, "No space left on device"))
    with pytest.raises(ModelLoadError, match="no space left on the disk of .* set RAGGUARD_CACHE to a folder on another"):
        _load_gguf_cached(tmp_path, "model.gguf", "ab" * 32)
    assert [p.name for p in (tmp_path / "cache" / "models").iterdir() if not p.name.endswith(".lock")] == []


def test_the_gguf_tensor_bar_stays_off_a_log() -> None:
    import io

    import transformers.modeling_gguf_pytorch_utils as gguf_utils

    from ragguard.generation.sources import _quiet_gguf_bar

    bar = gguf_utils.tqdm
    log = io.StringIO()
    with _quiet_gguf_bar():  # stderr is not a terminal under pytest: as in CI or `ask --json 2> log`
        for _ in gguf_utils.tqdm(range(3), file=log, desc="Converting and de-quantizing GGUF tensors..."):
            pass
    assert log.getvalue() == "" and gguf_utils.tqdm is bar
