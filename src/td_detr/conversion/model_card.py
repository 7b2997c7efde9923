"""The README.md (model card) written next to a converted checkpoint."""

from __future__ import annotations

from .options import SOURCE_REPOSITORIES, reproduces_official_t2v_mask
from .weights import KNOWN_UNUSED_OFFICIAL_TENSORS, OfficialLayout

_SOURCE_NAMES = {"qd-detr": "QD-DETR (CVPR 2023)", "td-detr-official": "TD-DETR (ICCV 2025), official code"}


def _inputs_section(layout: OfficialLayout, source: str) -> str:
    video_only = layout.video_width - layout.audio_width - (2 if layout.use_tef else 0)
    lines = [
        "## Inputs",
        "",
        f"- `video_features`: `[batch, clips, {layout.video_feature_size}]`, zero-padded, with `video_mask`. Use the "
        "same features the official loader built: each feature type L2-normalised per clip, concatenated in the "
        f"order of the official `v_feat_dirs` ({video_only} channels"
        + (", e.g. SlowFast 2304 + CLIP 512" if video_only == 2816 else "") + ").",
    ]
    if layout.use_tef:
        lines.append("- Do **not** append the temporal endpoint feature (TEF): the model appends `[i/L, (i+1)/L]` "
                     "itself, computed from `video_mask`.")
    if layout.audio_width:
        lines.append(
            f"- **Audio**: the official model concatenates its audio block after the video. Concatenate it yourself: "
            f"`video_features = cat([video ({video_only}), audio ({layout.audio_width})], -1)`. The audio block is "
            "exactly what the official audio loader produced: the L2-normalised audio features"
            + (" followed by their own TEF `[i/L, (i+1)/L]` (that loader appends one to the audio too, which is why "
               "PANN's 2048 features count as a_feat_dim 2050)" if layout.use_tef else "")
            + ". The converter moved the official video-TEF channels to the end, where our model puts the TEF."
        )
    lines.append(f"- `text_features`: `[batch, tokens, {layout.text_width}]` per-token features (CLIP text tower, "
                 "each token L2-normalised), with `text_mask`.")
    return "\n".join(lines)


def render_model_card(
    *, source: str, checkpoint_name: str, checkpoint_sha256: str, epoch, config, layout: OfficialLayout,
    dropped: list[str], defaulted: list[str], options_file: str | None,
) -> str:
    """Markdown model card naming the source checkpoint, the conversion choices and how to feed the model."""
    repository = SOURCE_REPOSITORIES[source]
    dynamics = (
        f"Dynamics enhancement on, as the official code computes it: β = {config.dynamics_beta}, "
        "`dynamics_fusion=\"residual\"`, `dynamics_with_position=True`."
        if config.use_dynamics else "QD-DETR baseline mode (`use_dynamics=False`)."
    )
    batch_note = (
        "The official text-to-video attention mask leaks between the samples of a batch (it is repeated head-major "
        "for a batch-major attention), so official outputs of a sample depend on the other samples whenever a "
        "sample has both padded clips and padded query tokens. "
        + ("This model reproduces that (`official_t2v_mask=True`)."
           if reproduces_official_t2v_mask() else
           "This td-detr version does not reproduce that leak: outputs equal the official ones for a batch of one, "
           "or when no sample has both padded clips and padded tokens.")
    )
    dropped_lines = [f"  - `{key}`" for key in dropped] or ["  - none"]
    reasons = [f"- `{pattern}`: {reason}" for pattern, reason in KNOWN_UNUSED_OFFICIAL_TENSORS.items()]
    tags = "\n".join(f"- {tag}" for tag in ("video-moment-retrieval", "highlight-detection", "td-detr", source))
    return f"""---
library_name: td-detr
tags:
{tags}
---

# {_SOURCE_NAMES[source]} converted to td-detr

Weights converted from the official checkpoint `{checkpoint_name}` (sha256 `{checkpoint_sha256}`{
f", epoch {epoch}" if epoch is not None else ""}) of [{repository}]({repository}) with
`td-detr convert --from {source}`{f" (options from `{options_file}`)" if options_file else ""}. The weights keep the
licence and terms of the source repository.

In eval mode the converted model gives the official model's spans, class logits and saliency scores for the same
inputs (see the batch note below). {dynamics} Depths: {config.t2v_layers} T2V / {config.encoder_layers} encoder / {config.decoder_layers}
decoder layers, {config.num_queries} queries, hidden size {config.hidden_size}.

```python
from td_detr import TDDetrForMomentRetrieval

model = TDDetrForMomentRetrieval.from_pretrained("path/to/this/folder")
outputs = model(video_features, video_mask, text_features, text_mask)
windows = model.post_process(outputs, durations)
```

{_inputs_section(layout, source)}

## Conversion notes

- {batch_note}
- The official forward always encodes a negative pair (text rolled by one); ours does so only when asked
  (`output_negative_saliency=True`) or when training. Positive outputs do not depend on it.
- Official options not found in the checkpoint, taken from the official parser defaults:
  {", ".join(f"`{name}`" for name in defaulted) or "none"}.
- Official tensors dropped on purpose (the official forward does not use them for predictions):
{chr(10).join(dropped_lines)}

  Reasons, by pattern:
{chr(10).join("  " + line for line in reasons)}
"""
