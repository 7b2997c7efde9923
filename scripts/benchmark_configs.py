"""What `scripts/benchmark.py` measures: our configs, the official code's models, the problem sizes and repeats,
and the `TDDetrConfig` of each config at a size."""

from __future__ import annotations

CONFIGS = {
    "td_detr": ("TD-DETR 4/4/4, dynamics, synthesis", dict()),
    "td_detr_no_synthesis": ("TD-DETR 4/4/4, synthesis off", dict(synthesis_pairing="none")),
    "qd_detr_2l": ("QD-DETR baseline 2/2/2", dict(baseline=True)),
    "qd_detr_4l": ("QD-DETR arch 4/4/4", dict(baseline=True, t2v_layers=4, encoder_layers=4, decoder_layers=4)),
    "td_detr_checkpointing": ("TD-DETR 4/4/4, activation checkpointing", dict(activation_checkpointing=True)),
    "td_detr_row_chunks": ("TD-DETR 4/4/4, row chunks of 16", dict(row_chunk_size=16)),
}

# The official code's models (``--official-src``), measured by its driver: key -> (label, ENCxDEC variant).
OFFICIAL = {
    "official_2l": ("official QD-DETR 2/2/2", "2x2"),
    "official_4l": ("official QD-DETR 4/4/4", "4x4"),
}

COMPILED = "_compiled"  # suffix of a config measured under torch.compile
BF16 = "_bf16"  # suffix of a config (ours or official) whose forward runs under torch.autocast("cpu", bfloat16)

# Problem sizes. The dry run shrinks everything (model too) but keeps the layer counts of each config.
SIZES = {
    "real": dict(batch=32, clips=75, tokens=32, video_dims=(2304, 512), text_dim=512, queries=1550, model={}),
    "tiny": dict(batch=4, clips=20, tokens=6, video_dims=(16, 8), text_dim=8, queries=40,
                 model=dict(hidden_size=16, num_attention_heads=2, ffn_dim=32, num_queries=5)),
}
# Measured repeats (each preceded by `warmup` unmeasured ones).
REPEATS = {
    "full": dict(train=8, infer_b1=30, infer_b32=5, score=5, naive=2, warmup=1, naive_warmup=1),
    "quick": dict(train=2, infer_b1=10, infer_b32=1, score=2, naive=1, warmup=1, naive_warmup=0),
    "dry": dict(train=1, infer_b1=1, infer_b32=1, score=1, naive=1, warmup=1, naive_warmup=0),
}


def build_config(key: str, size: dict, dropout_implementation: str = "torch"):
    from td_detr import TDDetrConfig

    overrides = dict(CONFIGS[key][1], dropout_implementation=dropout_implementation)
    baseline = overrides.pop("baseline", False)
    overrides.pop("activation_checkpointing", False)  # a model setting, applied in measure_config
    overrides.pop("row_chunk_size", None)  # a training-step setting (TDDetrTrainer(row_chunk_size=...))
    overrides.update(size["model"])
    overrides.update(video_feature_size=sum(size["video_dims"]), text_feature_size=size["text_dim"])
    return TDDetrConfig.qd_detr_baseline(**overrides) if baseline else TDDetrConfig(**overrides)


def size_rows(size: dict, seed: int = 0, batch: int | None = None) -> list[dict]:
    """`batch` (default: the size's) random collator rows of the size's shapes, drawn from generator `seed`."""
    import numpy as np
    from benchmark_collator import make_rows

    return make_rows(size["batch"] if batch is None else batch, np.random.default_rng(seed), clips=size["clips"],
                     dims=size["video_dims"], text=(size["tokens"], size["text_dim"]))
