"""The spurious-correlation evaluation of a trained model (paper Fig. 1, §4, S4.2).

Three evaluations of one split:

* **standard**: the official metrics on the untouched split;
* **masked moments**: every ground-truth moment (widened by 3 s each side) is erased from its video
  (:func:`.splits.write_masked_split`) while the original windows stay the targets. A model that still "finds" the
  erased moment relies on its context: *Spurious R1@0.5 / R1@0.7 / mAP* are the full-set R1 and mAP on this split,
  and **lower is better**;
* **dynamic context** (S4.2): every video keeps its moment while its context comes from a video of another source
  video (:func:`.splits.write_dynamic_context_split`), the most similar one by Eq. 1 (``dynamic_context``) and a
  random one (``dynamic_context_random``), reported side by side; the standard metrics, higher is better.

The two derived splits are written to disk in the standard layout, so other tools can evaluate on them too.
"""

from __future__ import annotations

import functools
from pathlib import Path

SPURIOUS_KEYS = {"Spurious-R1@0.5": "MR-full-R1@0.5", "Spurious-R1@0.7": "MR-full-R1@0.7", "Spurious-mAP": "MR-full-mAP"}


def _evaluate_layout(model, processor, annotation_file, video_feature_dirs, text_feature_dir, settings, cache_dir,
                     batch_size):
    from ..data.builder import load_moment_retrieval_dataset
    from ..data.collator import DataCollatorForMomentRetrieval
    from ..data.ground_truth import ground_truth_records
    from ..inference import predict_dataset
    from ..metrics import evaluate_submission

    splits = load_moment_retrieval_dataset(
        "layout",
        annotation_files={"validation": str(annotation_file)},
        video_feature_dirs=tuple(str(d) for d in video_feature_dirs),
        text_feature_dir=str(text_feature_dir),
        clip_length=settings.clip_length,
        max_video_length=settings.max_video_length,
        max_query_length=settings.max_query_length,
        with_saliency=settings.with_saliency,
        cache_dir=cache_dir,
    )
    dataset = splits["validation"]
    collator = DataCollatorForMomentRetrieval.from_config(model.config, training=False, processor=processor)
    records = predict_dataset(model, dataset, collator, batch_size=batch_size)
    return evaluate_submission(records, ground_truth_records(dataset), clip_length=settings.clip_length), records


CONTEXT_SPLITS = {"similarity": "dynamic_context", "random": "dynamic_context_random"}


def spurious_evaluation(
    model, settings, split: str, output_dir, *, fill: str = "noise", contexts=("similarity", "random"), seed: int = 0,
    cache_dir=None, batch_size: int = 64, processor=None,
) -> dict:
    """Run the evaluations of `split` of a data set (`settings`: a resolved
    :class:`~td_detr.data.builder.DatasetSettings`) with the model's `processor` (default: made from its config).
    Returns {"standard": brief, "masked": {Spurious-* and the masked split's brief}, "dynamic_context": brief
    (similarity donors), "dynamic_context_random": brief (random donors), "splits": {name: annotation file}};
    `contexts` picks which dynamic-context splits are built. The predictions of each evaluation are written as
    `predictions.jsonl`: the standard one in `output_dir`, the others in their split's folder."""
    from ..metrics import write_jsonl
    from ..processing_td_detr import TDDetrProcessor
    from .splits import write_dynamic_context_split, write_masked_split

    processor = processor or TDDetrProcessor.from_model_config(model.config)

    output_dir = Path(output_dir)
    annotation = settings.annotation_files[split]
    video_dirs, text_dir = settings.video_feature_dirs, settings.text_feature_dir
    standard, records = _evaluate_layout(model, processor, annotation, video_dirs, text_dir, settings, cache_dir,
                                         batch_size)
    output_dir.mkdir(parents=True, exist_ok=True)
    write_jsonl(output_dir / "predictions.jsonl", records)

    report = {"standard": standard["brief"], "splits": {}}
    writers = {
        "masked": lambda out: write_masked_split(
            annotation, video_dirs, text_dir, out, clip_length=settings.clip_length, fill=fill, seed=seed),
    }
    for pairing in contexts:
        writers[CONTEXT_SPLITS[pairing]] = functools.partial(
            write_dynamic_context_split, annotation, video_dirs, text_dir, clip_length=settings.clip_length,
            pairing=pairing, seed=seed)
    for name, write in writers.items():
        folder = output_dir / name
        split_file = write(folder)
        report["splits"][name] = str(split_file)
        metrics, records = _evaluate_layout(
            model, processor, split_file, [folder / Path(d).name for d in video_dirs], folder / Path(text_dir).name, settings,
            cache_dir, batch_size,
        )
        write_jsonl(folder / "predictions.jsonl", records)
        report[name] = metrics["brief"]
    report["masked"] = {**{key: report["masked"][source] for key, source in SPURIOUS_KEYS.items()}, **report["masked"]}
    return report


def format_spurious_report(report: dict) -> str:
    """A small table: standard vs dynamic-context metrics, and the Spurious metrics (lower is better)."""
    keys = ("MR-full-R1@0.5", "MR-full-R1@0.7", "MR-full-mAP")
    lines = [f"{'':32s}{'R1@0.5':>9s}{'R1@0.7':>9s}{'mAP':>9s}"]
    rows = (("standard", "standard"), ("dynamic context, similar donor", "dynamic_context"),
            ("dynamic context, random donor", "dynamic_context_random"))
    for label, name in rows:
        if name in report:
            lines.append(f"{label:32s}" + "".join(f"{report[name][k]:9.2f}" for k in keys))
    lines.append(f"{'spurious, masked (lower=better)':32s}" + "".join(f"{report['masked'][k]:9.2f}" for k in SPURIOUS_KEYS))
    return "\n".join(lines)
