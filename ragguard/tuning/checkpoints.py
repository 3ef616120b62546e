"""Training checkpoints that hold no pickles: adapter, optimizer and RNG states as safetensors, the rest JSON.

A checkpoint is written to a temporary folder and renamed into place once
complete (marked by :data:`COMPLETE`), so a run killed mid-write never
leaves a checkpoint that a resume would trust.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

__all__ = ["CHECKPOINTS", "COMPLETE", "trainable", "save_checkpoint", "last_checkpoint", "load_checkpoint"]

CHECKPOINTS = "checkpoints"
COMPLETE = "ragguard-checkpoint-complete"


def trainable(model: Any) -> list[Any]:
    return [p for p in model.parameters() if p.requires_grad]


def save_checkpoint(out: Path, step: int, model: Any, optimizer: Any, state: dict[str, Any], keep: int) -> Path:
    import torch
    from peft import get_peft_model_state_dict
    from safetensors.torch import save_file

    root = out / CHECKPOINTS
    final = root / f"step-{step:06d}"
    tmp = root / f".tmp-step-{step:06d}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    adapter = {k: v.detach().cpu().contiguous() for k, v in get_peft_model_state_dict(model).items()}
    save_file(adapter, str(tmp / "adapter_model.safetensors"))
    opt = optimizer.state_dict()
    tensors: dict[str, Any] = {}
    for index, slots in opt["state"].items():
        for name, value in slots.items():
            tensors[f"{index}.{name}"] = (value.detach().cpu().reshape(-1) if torch.is_tensor(value)
                                          else torch.tensor([float(value)]))
    tensors["rng.cpu"] = torch.get_rng_state()
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = s
    save_file(tensors, str(tmp / "optimizer.safetensors"))
    (tmp / "trainer_state.json").write_text(json.dumps({**state, "param_groups": opt["param_groups"]}, indent=1))
    (tmp / COMPLETE).write_text(str(step))
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    done = sorted(p for p in root.glob("step-*") if (p / COMPLETE).is_file())
    for old in done[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def last_checkpoint(out: Path) -> Path | None:
    done = sorted(p for p in (out / CHECKPOINTS).glob("step-*") if (p / COMPLETE).is_file())
    return done[-1] if done else None


def load_checkpoint(path: Path, model: Any, optimizer: Any) -> dict[str, Any]:
    import torch
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    set_peft_model_state_dict(model, load_file(str(path / "adapter_model.safetensors")))
    state = json.loads((path / "trainer_state.json").read_text())
    tensors = load_file(str(path / "optimizer.safetensors"))
    current = optimizer.state_dict()
    slots: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if key.startswith("rng."):
            continue
        index, name = key.split(".", 1)
        slots.setdefault(int(index), {})[name] = value
    params = [p for group in current["param_groups"] for p in group["params"]]
    shapes = {i: p.shape for i, p in zip(params, trainable(model), strict=False)}
    restored = {i: {n: (v.reshape(()) if n == "step" else v.reshape(shapes[i])) for n, v in s.items()}
                for i, s in slots.items()}
    optimizer.load_state_dict({"state": restored, "param_groups": state.pop("param_groups")})
    torch.set_rng_state(tensors["rng.cpu"])
    if torch.cuda.is_available():
        cuda = [tensors[k] for k in sorted(k for k in tensors if k.startswith("rng.cuda."))]
        if cuda:
            torch.cuda.set_rng_state_all(cuda)
    return state
