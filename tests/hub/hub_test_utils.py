"""Helpers for the Hub tests: a tiny model, a hand-made HF cache entry and running Python in a fresh process."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import torch

from td_detr import TDDetrConfig, TDDetrForMomentRetrieval

UNREACHABLE = "http://127.0.0.1:9"  # nothing listens on the discard port: any request fails at once

# Variables that would point a child process at a real Hub, cache or token.
HF_VARIABLES = (
    "HF_ENDPOINT", "HF_HOME", "HF_HUB_CACHE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_TOKEN",
    "HUGGING_FACE_HUB_TOKEN", "HF_TOKEN_PATH", "HF_OIDC_RESOURCE", "TRANSFORMERS_CACHE",
)


def tiny_config(**overrides) -> TDDetrConfig:
    settings = dict(
        video_feature_size=12, text_feature_size=8, hidden_size=16, num_attention_heads=2, ffn_dim=32,
        t2v_layers=2, encoder_layers=2, decoder_layers=2, num_queries=5,
    )
    settings.update(overrides)
    return TDDetrConfig(**settings)


def tiny_model(seed: int = 0, **overrides) -> TDDetrForMomentRetrieval:
    torch.manual_seed(seed)
    return TDDetrForMomentRetrieval(tiny_config(**overrides)).eval()


def fixed_batch(config: TDDetrConfig, batch: int = 2, clips: int = 9, tokens: int = 5) -> dict:
    generator = torch.Generator().manual_seed(1234)
    return dict(
        video_features=torch.randn(batch, clips, config.video_feature_size, generator=generator),
        video_mask=torch.ones(batch, clips),
        text_features=torch.randn(batch, tokens, config.text_feature_size, generator=generator),
        text_mask=torch.ones(batch, tokens),
    )


def assert_same_model(expected: torch.nn.Module, loaded: torch.nn.Module) -> None:
    """Identical weights, and outputs equal up to float rounding (a model loaded from safetensors can differ from
    the in-memory one in the last bits on CPU, with bit-identical weights)."""
    want, got = expected.state_dict(), loaded.state_dict()
    assert want.keys() == got.keys()
    assert all(torch.equal(want[key], got[key]) for key in want), "weights changed on the way through the Hub"
    batch = fixed_batch(expected.config)
    with torch.no_grad():
        a, b = expected.eval()(**batch), loaded.eval()(**batch)
    for field in ("logits", "pred_spans", "saliency_scores"):
        torch.testing.assert_close(getattr(b, field), getattr(a, field), rtol=1e-5, atol=1e-6)


def populate_hf_cache(cache_dir: Path, repo_id: str, source_dir: Path) -> str:
    """Lay out `source_dir`'s files as the HF cache does after a download of `repo_id` at main (blobs plus relative
    symlinks from snapshots/<commit>/); there is no public API to write a cache entry from local files.
    Returns the commit hash written to refs/main."""
    repo_dir = Path(cache_dir) / f"models--{repo_id.replace('/', '--')}"
    commit = hashlib.sha1(repo_id.encode()).hexdigest()
    snapshot = repo_dir / "snapshots" / commit
    (repo_dir / "blobs").mkdir(parents=True, exist_ok=True)
    snapshot.mkdir(parents=True, exist_ok=True)
    for source in sorted(p for p in Path(source_dir).iterdir() if p.is_file()):
        blob = repo_dir / "blobs" / hashlib.sha256(source.read_bytes()).hexdigest()
        shutil.copyfile(source, blob)
        (snapshot / source.name).symlink_to(os.path.relpath(blob, snapshot))
    (repo_dir / "refs").mkdir(exist_ok=True)
    (repo_dir / "refs" / "main").write_text(commit)
    return commit


def run_python(args: list[str], env: dict[str, str], cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run `python ARGS` in a fresh process whose HF variables are exactly `env` (set before any import, as a user
    would), with one torch thread."""
    child_env = {k: v for k, v in os.environ.items() if k not in HF_VARIABLES}
    child_env.update(OMP_NUM_THREADS="1", HF_HUB_DISABLE_TELEMETRY="1", **env)
    return subprocess.run(
        [sys.executable, *args], env=child_env, cwd=cwd, capture_output=True, text=True, timeout=timeout
    )
