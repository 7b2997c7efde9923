"""``td-detr convert``: turn an official QD-DETR / TD-DETR checkpoint into a td-detr model folder.

    td-detr convert --from qd-detr model_best.ckpt --output-dir qd-detr-qvhighlights
    td-detr convert --from td-detr-official model_best.ckpt --opt opt.json --output-dir td-detr-qvhighlights
"""

from __future__ import annotations

import argparse

SOURCE_CHOICES = ("qd-detr", "td-detr-official")


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "convert",
        help="convert an official QD-DETR / TD-DETR checkpoint into a td-detr model folder",
        description=(
            "Read an official checkpoint (torch pickle with 'model' and 'opt'; loaded weights-only, no code runs), "
            "build the matching TDDetrConfig from its options, map every weight to td-detr names, and write "
            "model.safetensors, config.json and a README.md model card naming the source. QD-DETR checkpoints run "
            "in the baseline mode (no dynamics); official TD-DETR ones with the official dynamics settings."
        ),
    )
    parser.add_argument("checkpoint", metavar="CKPT", help="official checkpoint file (e.g. model_best.ckpt)")
    parser.add_argument(
        "--from", dest="source", required=True, choices=SOURCE_CHOICES, help="which official code trained it"
    )
    parser.add_argument(
        "--opt", dest="options", default=None,
        help="the run's opt.json; overrides the options stored in the checkpoint (required when it has none)",
    )
    parser.add_argument("--output-dir", required=True, help="folder to write the converted model to")
    parser.add_argument("--overwrite", action="store_true", help="write into --output-dir even when it is not empty")
    parser.set_defaults(func=run)
    return parser


def run(args) -> int:
    from ..conversion import convert_official_checkpoint

    result = convert_official_checkpoint(args.checkpoint, args.source, args.options, args.output_dir,
                                         overwrite=args.overwrite)
    config = result.model.config
    print(
        f"converted {args.checkpoint} ({args.source}) → {result.output_dir}: "
        f"{config.t2v_layers}/{config.encoder_layers}/{config.decoder_layers} T2V/encoder/decoder layers, "
        f"video_feature_size={config.video_feature_size}, text_feature_size={config.text_feature_size}, "
        f"dynamics={'on' if config.use_dynamics else 'off'}"
    )
    if result.dropped:
        print(f"dropped {len(result.dropped)} unused official tensor(s): {', '.join(result.dropped)}")
    if result.layout.audio_width:
        print(f"audio model: feed cat([video, audio ({result.layout.audio_width} channels)]) as video_features; "
              "see README.md")
    return 0
