"""What makes a decode step with several rows cheap: the key/value cache and two CPU kernels.

:class:`~ragguard.generation.generators.TransformersGenerator` decodes one greedy row and
N seeded rows per prompt in one pass. Three things keep the N extra rows from
costing N times as much:

* **Room in the cache** (:func:`preallocate`): after the prefill each layer's
  keys and values move into a buffer with room for every token still to come,
  so a step writes one position in place instead of copying the whole cache
  (transformers' default cache concatenates, which profiled at about half of
  the CPU time of decoding a 700-token prompt).
* **Shared-prefix attention** (:func:`share_prefix`): the rows of one prompt
  keep one copy of the prompt's keys and values instead of one per row. A step
  attends to the prompt once for all its rows (their queries stacked into one
  matrix product) and to each row's own generated tokens separately, and the
  two softmax parts are merged with their log-sum-exp, as cascade attention
  does on GPUs. With a 600-token prompt and 9 rows, attention reads 9 times
  less memory; the rows' answers are the same up to float rounding. Such a
  pass prefills each prompt on its own (:func:`prefill_shared`), so a
  prompt's cache is bit for bit the one it gets when asked alone. In
  bfloat16 (and float16) the prompt's keys and values are kept once in
  float32 and the attention sums in float32, as sdpa's kernels do; and a lone
  row takes this path too (:func:`min_shared_rows`), because in 16 bits the
  two attentions round differently enough to flip tokens, and a question
  must get the same answers alone as inside a batch.
* **Small-batch linear layers** (:func:`speed_up_small_batches`): on a CPU,
  PyTorch's float32 ``linear`` with 2 to 32 rows runs well below memory speed
  (measured: the 30 layers of SmolLM2-135M took 1.9x as long for 9 rows as
  for 1). Computing ``W @ x.T`` instead streams each weight once for all rows.
  Float32 only: 16-bit layers go to oneDNN, whose small-row kernels need no help.

``bench/consistency_cost.py`` measures each against the plain path, and
``tests/test_generators.py`` checks that the tokens stay the same.
"""

from __future__ import annotations

import types
from typing import Any

__all__ = [
    "preallocate",
    "prefill_shared",
    "share_prefix",
    "shares_prefix",
    "can_share_prefix",
    "min_shared_rows",
    "speed_up_small_batches",
    "roomy_layer_class",
    "cache_keyword",
    "cache_of",
]

ATTENTION_NAME = "ragguard_shared_prefix"
# Model families whose attention is plain causal softmax attention over the whole cache
# (no sliding window, soft-capping or sinks): shared-prefix attention gives them the same result.
_SHARED_PREFIX_FAMILIES = {"llama", "qwen2", "qwen3"}
# Rows where W @ x.T beat F.linear on the 2-core CPU over SmolLM2-135M's layers (they were even at 64).
_SMALL_BATCH_ROWS = (2, 32)


# ------------------------------------------------------------------ the cache
def cache_keyword(model: Any) -> str:
    """The forward keyword that takes the key/value cache: ``cache`` from transformers 5.2x on
    (``past_key_values`` is deprecated there, to be removed in 5.40), ``past_key_values`` before."""
    import inspect

    base = getattr(model, "get_base_model", None)  # a PEFT wrapper passes keywords through to its base
    try:
        params = inspect.signature((base() if callable(base) else model).forward).parameters
    except (TypeError, ValueError):
        return "past_key_values"
    return "cache" if "cache" in params else "past_key_values"


def cache_of(out: Any) -> Any:
    """The key/value cache a forward pass returned, under either name."""
    cache = getattr(out, "cache", None)
    return cache if cache is not None else out.past_key_values


def preallocate(cache: Any, room: int) -> None:
    """Swap the cache's plain dynamic layers for :class:`_RoomyLayer` ones with ``room`` free positions."""
    from transformers.cache_utils import DynamicLayer

    layers = getattr(cache, "layers", None)
    if not layers:
        return
    for i, layer in enumerate(layers):
        if type(layer) is DynamicLayer and layer.is_initialized and layer.keys.numel():
            layers[i] = roomy_layer_class()(layer.keys, layer.values, room)


_CLASSES: dict[str, Any] = {}


def roomy_layer_class() -> Any:
    """Define the layer classes on first use (keeps transformers out of ``import ragguard``)."""
    if "roomy" in _CLASSES:
        return _CLASSES["roomy"]
    from transformers.cache_utils import DynamicLayer

    class _RoomyLayer(DynamicLayer):
        """A dynamic cache layer whose keys and values live in a buffer with free positions at the end.

        ``update`` writes the new positions in place and returns views of the
        filled part: the same values the default layer returns, without
        copying the whole cache each step. A full buffer doubles its room.
        """

        def __init__(self, keys: Any, values: Any, room: int) -> None:
            super().__init__()
            self.dtype, self.device = keys.dtype, keys.device
            self.length = keys.shape[-2]
            self._keys = self._with_room(keys, room)
            self._values = self._with_room(values, room)
            self._expose()
            self.is_initialized = True

        def _with_room(self, tensor: Any, room: int) -> Any:
            import torch

            batch, heads, length, dim = tensor.shape
            buffer = torch.empty((batch, heads, length + max(1, room), dim), dtype=tensor.dtype, device=tensor.device)
            buffer[:, :, :length] = tensor[:, :, :length]
            return buffer

        def _expose(self) -> None:
            self.keys = self._keys[:, :, : self.length]
            self.values = self._values[:, :, : self.length]

        def update(self, key_states: Any, value_states: Any, *args: Any, **kwargs: Any) -> tuple[Any, Any]:
            new = key_states.shape[-2]
            if self.length + new > self._keys.shape[-2]:
                self._keys = self._with_room(self._keys[:, :, : self.length], self.length + new)
                self._values = self._with_room(self._values[:, :, : self.length], self.length + new)
            self._keys[:, :, self.length : self.length + new] = key_states
            self._values[:, :, self.length : self.length + new] = value_states
            self.length += new
            self._expose()
            return self.keys, self.values

        def batch_select_indices(self, indices: Any) -> None:
            self._keys = self._keys[indices, ...]
            self._values = self._values[indices, ...]
            self._expose()

        def batch_repeat_interleave(self, repeats: int) -> None:
            self._keys = self._keys.repeat_interleave(repeats, dim=0)
            self._values = self._values.repeat_interleave(repeats, dim=0)
            self._expose()

        def crop(self, tokens_to_remove: int) -> None:
            if tokens_to_remove < 0:
                self.length = max(0, self.length + tokens_to_remove)
                self._expose()
            else:
                super().crop(tokens_to_remove)

        def reset(self) -> None:
            super().reset()
            self.length = 0

    class _SharedPrefixLayer(_RoomyLayer):
        """The prompts' keys and values once per prompt, and each row's generated tokens in a roomy buffer.

        ``update`` returns only the rows' own tokens: the attention function
        registered by :func:`share_prefix` adds the prompt part.
        """

        def __init__(self, keys: Any, values: Any, rows: _Rows, room: int) -> None:
            _, heads, _, dim = keys.shape
            super().__init__(keys.new_empty((rows.count, heads, 0, dim)), values.new_empty((rows.count, heads, 0, dim)), room)
            # Held once in float32 (a copy of a 16-bit cache): the attention sums in float32 (see the module doc).
            self.prefix_keys, self.prefix_values = keys.float(), values.float()
            self.rows = rows

        def get_seq_length(self) -> int:
            return self.prefix_keys.shape[-2] + self.length

        def select(self, indices: Any, prompts: Any) -> None:
            self.batch_select_indices(indices)
            if prompts is not None:
                self.prefix_keys = self.prefix_keys[prompts]
                self.prefix_values = self.prefix_values[prompts]

        def batch_repeat_interleave(self, repeats: int) -> None:
            raise NotImplementedError("shared-prefix cache rows are chosen when it is built")

    _CLASSES["roomy"] = _RoomyLayer
    _CLASSES["shared"] = _SharedPrefixLayer
    return _RoomyLayer


class _Rows:
    """Which prompt each row decodes, and its place among that prompt's rows (shared by all layers)."""

    def __init__(self, row_prompt: Any, prompt_mask: Any, prompts: int) -> None:
        import torch

        self.prompts = prompts
        self.bias: Any = None
        if prompt_mask is not None and not bool(prompt_mask.all()):
            # Left padding of shorter prompts: -inf keeps those positions out of the (float32) softmax.
            bias = torch.zeros(prompt_mask.shape, dtype=torch.float32, device=prompt_mask.device)
            self.bias = bias.masked_fill(~prompt_mask.bool(), float("-inf"))[:, None, None, :]
        self._index(row_prompt)

    def _index(self, row_prompt: Any) -> None:
        import torch

        self.row_prompt = row_prompt
        self.count = int(row_prompt.numel())
        counts = torch.bincount(row_prompt, minlength=self.prompts)
        self.width = int(counts.max())
        # Rows are grouped by prompt (in order), so a row's place is its distance from its group's start.
        starts = counts.cumsum(0) - counts
        self.slot = torch.arange(self.count, device=row_prompt.device) - starts[row_prompt]
        self.single = self.prompts == 1

    def select(self, indices: Any) -> Any:
        """Keep the rows ``indices``; returns the prompts still in use when some have none left, else None."""
        import torch

        row_prompt = self.row_prompt[indices]
        used = torch.unique(row_prompt)
        prompts = None
        if used.numel() < self.prompts:
            prompts = used
            remap = torch.full((self.prompts,), -1, dtype=torch.long, device=row_prompt.device)
            remap[used] = torch.arange(used.numel(), device=row_prompt.device)
            row_prompt = remap[row_prompt]
            self.prompts = int(used.numel())
            if self.bias is not None:
                self.bias = self.bias[used]
        self._index(row_prompt)
        return prompts


class SharedPrefixCache:
    """A transformers cache whose layers share each prompt's prefix among that prompt's rows."""

    def __init__(self, cache: Any, row_prompt: Any, prompt_mask: Any, room: int) -> None:
        roomy_layer_class()
        self.cache = cache
        keys = cache.layers[0].keys
        self.rows = _Rows(row_prompt, prompt_mask, prompts=keys.shape[0])
        cache.layers = [_CLASSES["shared"](layer.keys, layer.values, self.rows, room) for layer in cache.layers]
        if int(self.rows.row_prompt.unique().numel()) < self.rows.prompts:  # prompts asked for no rows
            import torch

            self.select_rows(torch.arange(self.rows.count, device=row_prompt.device))

    def select_rows(self, indices: Any) -> None:
        prompts = self.rows.select(indices)
        for layer in self.cache.layers:
            layer.select(indices, prompts)


def shares_prefix(model: Any) -> bool:
    """The model can use shared-prefix attention: a plain causal model family with sdpa attention, on a CPU."""
    config = getattr(model, "config", None)
    if config is None or getattr(config, "model_type", None) not in _SHARED_PREFIX_FAMILIES:
        return False
    if getattr(config, "_attn_implementation", None) not in ("sdpa", ATTENTION_NAME):
        return False
    return not getattr(config, "use_sliding_window", False) and next(model.parameters()).device.type == "cpu"


def min_shared_rows(model: Any) -> int:
    """Rows of one prompt from which a pass uses shared-prefix attention.

    Float32: 2 (one row has nothing to share, and sdpa gives it the same
    tokens up to float rounding). 16-bit weights: 1, so a prompt decoded alone
    takes the same attention as inside a batch; sdpa and the shared-prefix
    attention round differently in 16 bits, which flips tokens.
    """
    import torch

    return 2 if next(model.parameters()).dtype == torch.float32 else 1


def can_share_prefix(model: Any, cache: Any, rows_per_prompt: int) -> bool:
    """Shared-prefix attention pays and applies: a prompt has :func:`min_shared_rows` rows, the model
    :func:`shares_prefix`, and the prefill cache's layers are dynamic full-attention ones."""
    return rows_per_prompt >= min_shared_rows(model) and shares_prefix(model) and _plain_layers(cache)


def _plain_layers(cache: Any) -> bool:
    """Every layer of the cache is a filled dynamic full-attention layer."""
    from transformers.cache_utils import DynamicLayer

    layers = getattr(cache, "layers", None)
    return bool(layers) and all(
        type(layer) is DynamicLayer and layer.is_initialized and layer.keys.numel() for layer in layers
    )


def share_prefix(model: Any, cache: Any, row_prompt: Any, prompt_mask: Any, room: int) -> SharedPrefixCache:
    """Turn ``model``'s prefill cache (one row per prompt) into a :class:`SharedPrefixCache` for the rows ``row_prompt``.

    ``prompt_mask`` is the prompts' attention mask (1 = token, 0 = left padding).
    Decode with ``shared_prefix=cache`` among the model call's keyword arguments.
    The model's attention becomes :func:`_shared_prefix_attention` for good:
    without that keyword it is sdpa, so other calls (and other threads) are
    served as before, and nothing is switched back and forth.
    """
    _register()
    config = model.config
    if config._attn_implementation == "sdpa":
        config._attn_implementation = ATTENTION_NAME
    return SharedPrefixCache(cache, row_prompt, prompt_mask, room)


def prefill_shared(model: Any, prompts: Any, row_prompt: Any, room: int) -> tuple[SharedPrefixCache, Any] | None:
    """Prefill each prompt on its own and share it among its rows ``row_prompt``.

    One prompt at a time is what asking a question alone does, so a prompt's
    keys and values do not depend on the rest of the batch; on a CPU it is
    also faster than one left-padded batch (8 FAQ prompts: 14.4 s against
    21.8 s). For a model that :func:`shares_prefix`. Returns the cache and each
    prompt's last logits, or None when the model's cache layers cannot be shared
    (then prefill the usual way).
    """
    import torch

    device = next(model.parameters()).device
    caches, last = [], []
    for prompt in prompts:
        out = model(input_ids=torch.tensor([list(prompt)], device=device), use_cache=True, logits_to_keep=1)
        if not caches and not _plain_layers(cache_of(out)):
            return None
        caches.append(cache_of(out))
        last.append(out.logits[0, -1])
    width = max(len(p) for p in prompts)
    mask = torch.zeros((len(prompts), width), dtype=torch.long, device=device)
    for p, prompt in enumerate(prompts):
        mask[p, width - len(prompt) :] = 1
    first = caches[0]
    for i, layer in enumerate(first.layers):
        _, heads, _, dim = layer.keys.shape
        keys = layer.keys.new_zeros((len(prompts), heads, width, dim))  # zeros under the padding: masked out
        values = layer.values.new_zeros((len(prompts), heads, width, dim))
        for p, cache in enumerate(caches):
            length = len(prompts[p])
            keys[p, :, width - length :] = cache.layers[i].keys[0]
            values[p, :, width - length :] = cache.layers[i].values[0]
        layer.keys, layer.values = keys, values
    return share_prefix(model, first, row_prompt, mask, room), torch.stack(last)


_REGISTERED = False


def _register() -> None:
    global _REGISTERED
    if not _REGISTERED:
        from transformers import AttentionInterface
        from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

        # Without shared_prefix the attention is sdpa, so it takes sdpa's masks. Decode steps with
        # it pass no attention mask (rows have no padding after the prompt; the prompt's is in _Rows).
        AttentionInterface.register(ATTENTION_NAME, _shared_prefix_attention)
        AttentionMaskInterface.register(ATTENTION_NAME, sdpa_mask)
        _REGISTERED = True


def _softmax_parts(scores: Any, values: Any) -> tuple[Any, Any, Any]:
    """Row maxima, exp-sums and unnormalised outputs of softmax(scores) @ values."""
    import torch

    top = scores.amax(-1, keepdim=True)
    weights = torch.exp(scores - top)
    return top, weights.sum(-1, keepdim=True), torch.matmul(weights, values)


def _shared_prefix_attention(
    module: Any, query: Any, key: Any, value: Any, attention_mask: Any,
    dropout: float = 0.0, scaling: float | None = None, shared_prefix: SharedPrefixCache | None = None, **kwargs: Any,
) -> tuple[Any, None]:
    """Softmax attention of one new token per row over its prompt's shared prefix plus its own tokens."""
    import torch

    if shared_prefix is None or query.shape[-2] != 1:
        from transformers.integrations.sdpa_attention import sdpa_attention_forward

        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs)
    layer = shared_prefix.cache.layers[module.layer_idx]
    rows = layer.rows
    count, heads, _, dim = query.shape
    kv_heads = key.shape[1]
    per = heads // kv_heads  # query heads sharing one key/value head
    scale = scaling if scaling is not None else dim ** -0.5
    dtype = query.dtype  # 16-bit models: the sums run in float32, like the prompt's keys and values
    query, key, value = query.float(), key.float(), value.float()
    q = query.reshape(count, kv_heads, per, dim)

    # The prompt part: every row of a prompt is one more query against that prompt's keys.
    if rows.single:
        stacked = q.transpose(0, 1).reshape(1, kv_heads, count * per, dim)
    else:
        padded = q.new_zeros((rows.prompts, rows.width, kv_heads, per, dim))
        padded[rows.row_prompt, rows.slot] = q
        stacked = padded.permute(0, 2, 1, 3, 4).reshape(rows.prompts, kv_heads, rows.width * per, dim)
    scores = torch.matmul(stacked, layer.prefix_keys.transpose(-1, -2)).mul_(scale)
    if rows.bias is not None:
        scores = scores + rows.bias
    top1, sum1, out1 = _softmax_parts(scores, layer.prefix_values)

    def per_row(t: Any) -> Any:  # (prompts, kv_heads, width * per, x) -> (rows, kv_heads, per, x)
        if rows.single:
            return t.reshape(kv_heads, count, per, t.shape[-1]).transpose(0, 1)
        t = t.reshape(rows.prompts, kv_heads, rows.width, per, t.shape[-1]).permute(0, 2, 1, 3, 4)
        return t[rows.row_prompt, rows.slot]

    top1, sum1, out1 = per_row(top1), per_row(sum1), per_row(out1)

    # The row's own tokens (the one being decoded included).
    top2, sum2, out2 = _softmax_parts(torch.matmul(q, key.transpose(-1, -2)).mul_(scale), value)
    top = torch.maximum(top1, top2)
    w1, w2 = torch.exp(top1 - top), torch.exp(top2 - top)
    out = (out1 * w1 + out2 * w2) / (sum1 * w1 + sum2 * w2)
    return out.reshape(count, 1, heads, dim).to(dtype), None


# -------------------------------------------------------- small-batch linear
def speed_up_small_batches(model: Any, on: bool = True) -> int:
    """Give the model's float32 CPU ``nn.Linear`` layers the small-batch path (``on=False`` takes it back).

    Returns how many layers changed.
    """
    import torch

    changed = 0
    for module in model.modules():
        if type(module) is torch.nn.Linear and module.weight.dtype == torch.float32 and module.weight.device.type == "cpu":
            if on:
                module.forward = types.MethodType(_small_batch_linear, module)
            elif "forward" in vars(module):
                del module.forward
            else:
                continue
            changed += 1
    return changed


def _small_batch_linear(self: Any, x: Any) -> Any:
    """``nn.Linear.forward``, computed as ``(W @ x.T).T`` for 2 to 32 rows without gradients."""
    import torch

    rows = x.numel() // x.shape[-1] if x.shape[-1] else 0
    low, high = _SMALL_BATCH_ROWS
    if not low <= rows <= high or (torch.is_grad_enabled() and (x.requires_grad or self.weight.requires_grad)):
        return torch.nn.functional.linear(x, self.weight, self.bias)
    out = torch.matmul(self.weight, x.reshape(rows, x.shape[-1]).t()).t().contiguous()
    if self.bias is not None:
        out += self.bias
    return out.reshape(*x.shape[:-1], out.shape[-1])
