"""The decode fast paths in bfloat16 as well as float32, on the tiny random models (issue 19).

The float32 equivalences live in tests/test_generators.py; here the same
checks run per dtype. In bfloat16 the shared-prefix attention and sdpa round
differently, so on near-uniform tiny random models their *tokens* may differ:
what must hold is logits equal to bfloat16 precision, and a question
getting identical samples alone and inside a batch.
"""

from __future__ import annotations

import random

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from test_generators import PROMPT, make, plain_and_shared, tiny_model  # noqa: E402

from ragguard.generation import decoding  # noqa: E402
from ragguard.generation.decoding import cache_keyword  # noqa: E402

DTYPES = ["float32", "bfloat16"]


def _make(kind: str, dtype: str, **sampling: object):  # type: ignore[no-untyped-def]
    gen = make(kind, **sampling)
    gen._model = gen.model.to(getattr(torch, dtype))
    return gen


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", ["llama", "qwen2"])
def test_a_question_gets_the_same_samples_alone_and_in_a_batch(kind: str, dtype: str) -> None:
    """Prompts with several rows and with one row, left-padded among others, decoded alone: identical."""
    gen = _make(kind, dtype, max_new_tokens=16)
    rng = random.Random(0)
    for trial in range(2):
        prompts = [[rng.randrange(3, 64) for _ in range(rng.randrange(2, 30))] for _ in range(4)]
        seeds = [[None, 10 * trial + 1, 10 * trial + 2], [10 * trial + 3], [None], [10 * trial + 5, 10 * trial + 6]]
        batch = gen.generate_tokens_batch(prompts, seeds, ignore_stop=True)
        for p, rows in enumerate(seeds):
            assert gen.generate_tokens(prompts[p], rows, ignore_stop=True) == batch[p], (trial, p)


@pytest.mark.parametrize("kind", ["llama", "qwen2"])
def test_fast_paths_in_bfloat16_step_aside_or_keep_the_tokens(kind: str) -> None:
    """bfloat16: the small-batch linear steps aside (oneDNN's 16-bit kernels), the roomy cache keeps the
    tokens bit for bit, and the shared-prefix attention is used for a lone row too."""
    gen = _make(kind, "bfloat16", max_new_tokens=24)
    assert decoding.speed_up_small_batches(gen.model) == 0  # only float32 layers are swapped
    assert decoding.min_shared_rows(gen.model) == 1 and decoding.min_shared_rows(tiny_model(kind)) == 2
    prompts = [PROMPT, PROMPT[:3], [8, 8, 9], [4, 5, 6, 7, 8, 9, 10, 11]]
    seeds = [[None, 1, 2, 3], [4, None], [5, 6, 7], [8]]
    got = {}
    for name, (preallocate, share) in {"default": (True, True), "no sharing": (True, False),
                                       "plain": (False, False)}.items():
        gen.preallocate_cache, gen.share_prefix = preallocate, share
        got[name] = (gen.generate_tokens_batch(prompts, seeds), gen.generate_tokens_batch(prompts, seeds, ignore_stop=True))
    assert got["no sharing"] == got["plain"]
    assert all(len(r) == 24 for rows in got["default"][1] for r in rows)


@pytest.mark.parametrize("dtype, atol", [("float32", 1e-5), ("bfloat16", 2e-2)])
@pytest.mark.parametrize("kind", ["llama", "qwen2"])
def test_shared_prefix_logits_match_repeated_caches(kind: str, dtype: str, atol: float) -> None:
    """Every step's logits agree with sdpa over per-row caches, to the dtype's precision."""
    model = tiny_model(kind).to(getattr(torch, dtype))
    prompts = [PROMPT, [8, 9], [4, 5, 6, 7, 8, 9, 10, 11]]
    rows = [0, 0, 0, 1, 1, 2]
    model, row_mask, shared, plain = plain_and_shared(model, prompts, rows)
    with torch.inference_mode():
        assert shared.cache.layers[0].prefix_keys.dtype == torch.float32  # held once, summed in float32
        next_pos = row_mask.sum(-1)
        tokens = torch.tensor([[11], [12], [13], [14], [15], [16]])
        for keep in (None, torch.tensor([0, 2, 3, 4, 5]), torch.tensor([0, 1, 4]), None, None):
            if keep is not None:
                shared.select_rows(keep)
                plain.batch_select_indices(keep)
                row_mask, next_pos, tokens = row_mask[keep], next_pos[keep], tokens[keep]
            row_mask = torch.cat([row_mask, torch.ones_like(tokens)], dim=1)
            expected = model(input_ids=tokens, attention_mask=row_mask, position_ids=next_pos[:, None],
                             use_cache=True, **{cache_keyword(model): plain}).logits
            got = model(input_ids=tokens, position_ids=next_pos[:, None], **{cache_keyword(model): shared.cache},
                        use_cache=True, shared_prefix=shared).logits
            assert got.dtype == expected.dtype
            diff = (got.float() - expected.float()).abs().max().item()
            assert diff <= atol, (kind, dtype, diff)
            next_pos, tokens = next_pos + 1, (tokens * 7 + 3) % 60 + 3


def test_a_lone_16_bit_row_prefills_and_decodes_through_the_shared_path() -> None:
    gen = _make("qwen2", "bfloat16", max_new_tokens=6)
    assert gen._shares_prefix(1) and not make("qwen2")._shares_prefix(1)
    assert gen.pass_tokens(600, 1, 64) == 664
    greedy = gen.generate_tokens(PROMPT, [None], ignore_stop=True)[0]
    assert len(greedy) == 6 and gen.model.config._attn_implementation == decoding.ATTENTION_NAME
