"""Training with the Hugging Face `Trainer`: `TDDetrTrainer` and the per-data-set training presets.

The trainer keeps two collators (the synthesizing one for training, a plain one for evaluation and prediction, so
augmentation never leaks into evaluation), evaluates with the official metrics (windows post-processed in seconds,
gathered across processes, scored by :func:`td_detr.metrics.evaluate_submission`), steps the learning rate down at
the official optimizer steps, and keeps the best checkpoint by the data set's selection metric.

Epochs. The official code trains on `SimilarityConcatDataset([SyntheticDataset, StartEndDataset])`: an epoch walks 2N
entries (every query once as the anchor of a synthetic pair, once as an original), ⌈2N/B⌉ optimizer steps. Our epoch
is that epoch: a preset's `passes_per_epoch` (2 for the real data sets) repeats the N training rows within an
epoch, shuffled together, so an epoch has ⌈passes·N/B⌉ steps and `--epochs`, `--lr-drop` and evaluation count the
official epochs. The learning rate is torch's `StepLR` with `step_size` = `lr_drop_epochs` × steps per epoch, stepped
per optimizer step, which drops it at exactly the official steps (the official StepLR steps once per epoch).
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import replace

import torch
from torch.utils.data import DataLoader
from transformers import Trainer, TrainingArguments
from transformers.trainer_utils import EvalLoopOutput

from .data.ground_truth import ground_truth_records
from .inference import predict_batches
from .metrics import evaluate_submission
from .registry import CUSTOM_SIZE_TIERS, DATA_SETS, SizeTier, TrainingPreset, size_tier


WEIGHT_DECAY_SCOPES = ("all", "weights")


# The per-data-set presets (td_detr.registry.DATA_SETS); "custom" data trains with its size tier's settings
# (td_detr.registry.CUSTOM_SIZE_TIERS, `preset_for(..., num_queries=N)`), the QVHighlights ones without N.
TRAINING_PRESETS = {name: entry.training for name, entry in DATA_SETS.items()}

# Every training-side behaviour of the official run (model side: `configuration_td_detr.OFFICIAL_TD_DETR`); the
# real-data presets already have them, `td-detr train --official` sets them on any preset.
OFFICIAL_TRAINING = {"passes_per_epoch": 2, "weight_decay_scope": "all"}


def official_preset(preset: TrainingPreset) -> TrainingPreset:
    """`preset` with every :data:`OFFICIAL_TRAINING` setting."""
    return replace(preset, **OFFICIAL_TRAINING)


def repeat_rows(dataset, passes: int):
    """`dataset` with its rows `passes` times (one epoch of `passes` passes; the sampler shuffles them together)."""
    if passes == 1 or dataset is None:
        return dataset
    import datasets

    if isinstance(dataset, datasets.Dataset):
        return datasets.concatenate_datasets([dataset] * passes)
    return torch.utils.data.ConcatDataset([dataset] * passes)


def training_arguments(output_dir: str, preset: TrainingPreset, **overrides) -> TrainingArguments:
    """`TrainingArguments` for a preset: epoch-wise evaluation and saving, best checkpoint by the preset's metric."""
    settings = dict(
        output_dir=output_dir,
        learning_rate=preset.learning_rate,
        weight_decay=preset.weight_decay,
        per_device_train_batch_size=preset.batch_size,
        per_device_eval_batch_size=preset.eval_batch_size,
        num_train_epochs=preset.epochs,
        max_grad_norm=preset.max_grad_norm,
        seed=preset.seed,
        eval_strategy="epoch",
        save_strategy="epoch",
        save_total_limit=2,
        load_best_model_at_end=True,
        metric_for_best_model=preset.best_metric,
        greater_is_better=True,
        logging_strategy="epoch",
        remove_unused_columns=False,
        label_names=["labels"],
        dataloader_num_workers=0,
        report_to="none",
        use_cpu=not torch.cuda.is_available(),
    )
    settings.update(overrides)
    return TrainingArguments(**settings)


class TDDetrTrainer(Trainer):
    """`Trainer` for TD-DETR.

    Args:
        eval_data_collator: the collator for evaluation / prediction (never synthesizes); `data_collator` is the
            training one.
        lr_drop_epochs, lr_gamma: multiply the learning rate by `lr_gamma` every `lr_drop_epochs` epochs (`StepLR`
            over optimizer steps, see :meth:`planned_schedule`); `None` keeps it constant.
        passes_per_epoch: passes over `train_dataset` (a keyword argument) in one epoch (module docstring).
        weight_decay_scope: `"all"` (official) or `"weights"` (biases and LayerNorm weights exempt).
        row_chunk_size: run each training batch's forward and backward in chunks of this many rows (the same
            gradient, a chunk's activation memory: `td_detr.row_chunks`); `None` runs the batch at once.
        Other arguments as `transformers.Trainer`. `args.label_names` must be `["labels"]`.
    """

    def __init__(self, *args, eval_data_collator=None, lr_drop_epochs: int | None = None, lr_gamma: float = 0.1,
                 passes_per_epoch: int = 1, weight_decay_scope: str = "all", row_chunk_size: int | None = None,
                 **kwargs):
        if passes_per_epoch < 1:
            raise ValueError(f"passes_per_epoch must be >= 1, got {passes_per_epoch}")
        if weight_decay_scope not in WEIGHT_DECAY_SCOPES:
            raise ValueError(f"weight_decay_scope must be one of {WEIGHT_DECAY_SCOPES}, got {weight_decay_scope!r}")
        if row_chunk_size is not None and row_chunk_size < 1:
            raise ValueError(f"row_chunk_size must be >= 1 or None, got {row_chunk_size}")
        if lr_drop_epochs is not None and lr_drop_epochs < 1:
            raise ValueError(f"lr_drop_epochs must be >= 1 or None, got {lr_drop_epochs}")
        kwargs["train_dataset"] = repeat_rows(kwargs.get("train_dataset"), passes_per_epoch)
        super().__init__(*args, **kwargs)
        self.eval_data_collator = eval_data_collator or self.data_collator
        self.lr_drop_epochs = lr_drop_epochs
        self.lr_gamma = lr_gamma
        self.passes_per_epoch = passes_per_epoch
        self.weight_decay_scope = weight_decay_scope
        self.row_chunk_size = row_chunk_size
        # Our loss is already a mean over the batch: let the Trainer scale it for gradient accumulation itself.
        self.model_accepts_loss_kwargs = False
        self.last_predictions: list[dict] = []

    def _prepare_inputs(self, inputs):
        # The labels stay on the host: the loss gathers their per-row tensors into a few batched ones and copies
        # those (td_detr.losses); moving them here would be ~4 host-to-device copies a row, each a sync on a GPU.
        labels = inputs.get("labels")
        prepared = super()._prepare_inputs({key: value for key, value in inputs.items() if key != "labels"})
        if labels is not None:
            prepared["labels"] = labels
        return prepared

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        # `meta` (qid, vid, duration per row) is for post-processing, not a model input
        inputs = {key: value for key, value in inputs.items() if key != "meta"}
        return super().compute_loss(model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch)

    def training_step(self, model, inputs, num_items_in_batch=None):
        if self.row_chunk_size is None or inputs["video_features"].shape[0] <= self.row_chunk_size:
            return super().training_step(model, inputs, num_items_in_batch=num_items_in_batch)
        from .row_chunks import chunked_forward_backward

        model.train()
        inputs = self._prepare_inputs({key: value for key, value in inputs.items() if key != "meta"})
        scale = 1.0 / self.current_gradient_accumulation_steps  # as the Trainer scales a batch-mean loss
        loss, _ = chunked_forward_backward(
            model, inputs, self.row_chunk_size,
            backward=lambda chunk_loss: self.accelerator.backward(chunk_loss * scale),
            forward_context=self.compute_loss_context_manager,
        )
        return (loss * scale).to(self.args.device)

    @contextlib.contextmanager
    def _evaluation_collator(self):
        training_collator = self.data_collator
        self.data_collator = self.eval_data_collator
        try:
            yield
        finally:
            self.data_collator = training_collator

    def get_eval_dataloader(self, eval_dataset=None) -> DataLoader:
        with self._evaluation_collator():
            return super().get_eval_dataloader(eval_dataset)

    def get_test_dataloader(self, test_dataset) -> DataLoader:
        with self._evaluation_collator():
            return super().get_test_dataloader(test_dataset)

    def get_decay_parameter_names(self, model) -> list[str]:
        if self.weight_decay_scope == "all":  # official: torch.optim.AdamW over one group of every parameter
            return [name for name, _ in model.named_parameters()]
        return super().get_decay_parameter_names(model)

    def planned_schedule(self) -> dict:
        """Optimizer steps per epoch (as the `Trainer` counts them), total steps and the steps at which the learning
        rate drops (the first step run at the lower rate, 0-based count of steps taken before it)."""
        steps_per_epoch = max(1, math.ceil(len(self.get_train_dataloader()) / self.args.gradient_accumulation_steps))
        if self.args.max_steps > 0:
            total = self.args.max_steps
        else:
            total = math.ceil(self.args.num_train_epochs * steps_per_epoch)
        drop = self.lr_drop_epochs * steps_per_epoch if self.lr_drop_epochs else None
        return {
            "steps_per_epoch": steps_per_epoch,
            "total_steps": total,
            "lr_drop_steps": list(range(drop, total, drop)) if drop else [],
        }

    def create_scheduler(self, num_training_steps: int, optimizer=None):
        if self.lr_scheduler is None:
            plan = self.planned_schedule()
            drop_steps = plan["lr_drop_steps"]
            step_size = drop_steps[0] if drop_steps else num_training_steps + 1  # no drop within the run
            self.lr_scheduler = torch.optim.lr_scheduler.StepLR(
                optimizer or self.optimizer, step_size=step_size, gamma=self.lr_gamma
            )
            self._created_lr_scheduler = True
        return self.lr_scheduler

    def evaluation_loop(self, dataloader, description, prediction_loss_only=None, ignore_keys=None,
                        metric_key_prefix: str = "eval") -> EvalLoopOutput:
        start = time.perf_counter()
        records, losses = predict_batches(
            self.model, self.eval_data_collator.processor, dataloader, prepare_inputs=self._prepare_inputs,
            # gathered per batch: accelerate drops the padding duplicates of the *last* batch only
            gather=lambda batch: self.accelerator.gather_for_metrics(batch, use_gather_object=True),
        )
        records = list({record["qid"]: record for record in records}.values())  # dataset order of first appearance
        loss = None
        if losses:
            loss = self.accelerator.gather(torch.stack(losses).mean().reshape(1)).mean().item()
        self.last_predictions = records
        metrics = {}
        if loss is not None:
            metrics[f"{metric_key_prefix}_loss"] = loss
        ground_truth = ground_truth_records(dataloader.dataset) if _has_ground_truth(dataloader.dataset) else None
        if ground_truth:
            clip_length = self.eval_data_collator.processor.clip_length
            scores = evaluate_submission(records, ground_truth, clip_length=clip_length)
            self.last_metrics = scores
            for key, value in scores["brief"].items():
                metrics[f"{metric_key_prefix}_{key}"] = value
        metrics[f"{metric_key_prefix}_scoring_seconds"] = round(time.perf_counter() - start, 3)
        return EvalLoopOutput(predictions=None, label_ids=None, metrics=metrics, num_samples=len(records))


def _has_ground_truth(dataset) -> bool:
    if "relevant_windows" not in getattr(dataset, "column_names", []):
        return False
    first = dataset.select_columns(["relevant_windows"]).with_format(None)[0]["relevant_windows"]
    return bool(first)


def custom_tier(dataset_name: str, num_queries: int | None) -> SizeTier | None:
    """The size tier (`td_detr.registry.CUSTOM_SIZE_TIERS`) of custom data with `num_queries` training queries; None
    for a data set with an entry of its own, or when the number is not given."""
    is_custom = DATA_SETS.get(dataset_name, DATA_SETS["custom"]) is DATA_SETS["custom"]
    return size_tier(num_queries) if is_custom and num_queries is not None else None


def size_table() -> str:
    """:data:`td_detr.registry.CUSTOM_SIZE_TIERS` as a Markdown table (the README shows it)."""
    from .configuration_td_detr import TDDetrConfig

    lines = ["| preset | training queries N | hidden size | T2V / encoder / decoder layers | epochs | learning rate |",
             "|---|---|---|---|---|---|"]
    low = 0
    for tier in CUSTOM_SIZE_TIERS:
        span = f"{low:,} ≤ N < {tier.below:,}" if tier.below else f"N ≥ {low:,}"
        config, preset = TDDetrConfig(**tier.model), tier.training
        layers = f"{config.t2v_layers} / {config.encoder_layers} / {config.decoder_layers}"
        lines.append(f"| custom-{tier.name} | {span} | {config.hidden_size} | {layers} | {preset.epochs} | "
                     f"{preset.learning_rate:g} |")
        low = tier.below or low
    return "\n".join(lines)


def preset_for(dataset_name: str, official: bool = False, num_queries: int | None = None) -> TrainingPreset:
    """The training preset of a data set; data in the standard layout without a preset of its own ("custom") trains
    with its size tier's settings (given `num_queries`; without it, the QVHighlights settings). `official`: with
    every :data:`OFFICIAL_TRAINING` setting."""
    tier = custom_tier(dataset_name, num_queries)
    preset = tier.training if tier else DATA_SETS.get(dataset_name, DATA_SETS["custom"]).training
    return official_preset(preset) if official else preset


def model_config_for(dataset_name: str, settings, base=None, pretrained: bool = False, num_queries: int | None = None):
    """The model config for a data set: `base` (a hub / saved config) or the data set's default (custom data: its
    size tier's, given `num_queries`), with feature sizes, clip length and length caps taken from the data. A
    pretrained model must match the data's feature sizes."""
    from .configuration_td_detr import TDDetrConfig
    from .errors import TDDetrInputError

    tier = custom_tier(dataset_name, num_queries)
    if base is None and tier is not None:
        base = TDDetrConfig.for_data_set("custom", **tier.model)
    elif base is None:
        base = TDDetrConfig.for_data_set(dataset_name if dataset_name in DATA_SETS else "custom")
    config = TDDetrConfig.from_dict(base.to_dict())
    video_size, text_size = sum(settings.video_feature_dims), settings.text_feature_dim
    if pretrained and (config.video_feature_size, config.text_feature_size) != (video_size, text_size):
        raise TDDetrInputError(
            f"the data has {video_size}-d video / {text_size}-d text features but the model expects "
            f"{config.video_feature_size} / {config.text_feature_size}"
        )
    config.video_feature_size, config.text_feature_size = video_size, text_size
    config.clip_length = settings.clip_length
    config.max_video_length = settings.max_video_length
    if settings.max_query_length is not None:
        config.max_query_length = settings.max_query_length
    return config


def synthetic_model_config():
    """The model of the embedded synthetic data set (`td_detr.registry.DATA_SETS["synthetic"]`: why it is small)."""
    from .configuration_td_detr import TDDetrConfig

    return TDDetrConfig.for_data_set("synthetic")
