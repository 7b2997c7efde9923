"""How far the model's fp32 outputs on CUDA lie from its CPU outputs, and which CUDA setting moves them.

The first GPU session saw `td-detr evaluate --device cuda` give saliency scores up to 8.8e-4 from the CPU's
(tests/commands/test_device_options.py allows 1e-4). This prints the largest |CUDA - CPU| of the saliency scores, spans
and logits of a tiny and of the default model (random weights, a padded batch) as they run, with attention on the
math backend (SDPA's fused kernels off) and with TF32 matrix products allowed, and the precision flags torch runs with,
so one line of output tells which of them the difference comes from.

    python scripts/cuda_cpu_agreement.py          # needs CUDA (scripts/gpu_session.sh runs it); exit 2 without
"""

from __future__ import annotations

import argparse
import sys

import torch


def random_batch(config, batch=4, clips=30, tokens=8, seed=0) -> dict:
    generator = torch.Generator().manual_seed(seed)
    video_mask, text_mask = torch.ones(batch, clips), torch.ones(batch, tokens)
    video_mask[1, 20:] = 0
    text_mask[2, 5:] = 0
    return dict(video_features=torch.randn(batch, clips, config.video_feature_size, generator=generator),
                video_mask=video_mask, text_features=torch.randn(batch, tokens, config.text_feature_size,
                                                                 generator=generator), text_mask=text_mask)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.parse_args(argv)
    if not torch.cuda.is_available():
        parser.error("needs a CUDA GPU: torch sees none")
    from torch.nn.attention import SDPBackend, sdpa_kernel

    from td_detr import TDDetrConfig, TDDetrForMomentRetrieval

    matmul = torch.backends.cuda.matmul
    print("allow_tf32", matmul.allow_tf32, "cudnn.allow_tf32", torch.backends.cudnn.allow_tf32,
          "float32_matmul_precision", torch.get_float32_matmul_precision())
    configs = {"tiny": TDDetrConfig(video_feature_size=12, text_feature_size=8, hidden_size=16, num_attention_heads=2,
                                    ffn_dim=32, num_queries=5),
               "default": TDDetrConfig(video_feature_size=2818, text_feature_size=512)}
    for name, config in configs.items():
        torch.manual_seed(0)
        model = TDDetrForMomentRetrieval(config).eval()
        batch = random_batch(config)
        with torch.no_grad():
            cpu = model(**batch)
            model.to("cuda")
            on_gpu = {key: value.cuda() for key, value in batch.items()}

            def largest_difference(setting: str) -> None:
                out = model(**on_gpu)
                cells = [f"{field} {(getattr(out, field).float().cpu() - getattr(cpu, field)).abs().max().item():.2e}"
                         for field in ("saliency_scores", "pred_spans", "logits")]
                print(f"{name:8s} {setting:22s} max |cuda - cpu|: " + ", ".join(cells))

            largest_difference("as it runs")
            with sdpa_kernel(SDPBackend.MATH):
                largest_difference("sdpa math backend")
            allowed = matmul.allow_tf32
            matmul.allow_tf32 = True
            largest_difference("tf32 matmul allowed")
            matmul.allow_tf32 = allowed
        print(f"{name:8s} largest |saliency score| on the CPU: {cpu.saliency_scores.abs().max().item():.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
