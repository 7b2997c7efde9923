"""Everything td-detr knows per data set, in one place (:data:`DATA_SETS`): where its files are and how its samples
are cut (the ``datasets`` builder config), its model settings (`TDDetrConfig` keywords on top of the defaults), its
training preset and what a model card says about it. The builder, `TDDetrConfig.for_data_set`, the training
presets, the hub configs and model cards, and the command line's ``--dataset`` read it from here. Data only.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .errors import TDDetrInputError


@dataclass(frozen=True)
class TrainingPreset:
    """Optimisation settings of one data set.

    `epochs` / `lr_drop_epochs` count epochs of `passes_per_epoch` passes over the training rows (module docstring);
    the learning rate is multiplied by `lr_gamma` every `lr_drop_epochs` epochs (`None`: never).
    `weight_decay_scope`: `"all"` (official: AdamW decays every parameter) or `"weights"` (the `Trainer`'s default:
    biases and LayerNorm weights exempt)."""

    learning_rate: float
    weight_decay: float
    batch_size: int
    eval_batch_size: int
    epochs: int
    lr_drop_epochs: int | None
    lr_gamma: float
    max_grad_norm: float
    best_metric: str
    seed: int = 2018
    passes_per_epoch: int = 2
    weight_decay_scope: str = "all"


@dataclass(frozen=True)
class DatasetInfo:
    """What a model card says about a training data set."""

    pretty_name: str
    dataset_type: str  # model-index `dataset.type`
    eval_split: str  # split the reported metrics come from
    has_highlights: bool
    license: str  # Hub licence id for the weights trained on it
    license_name: str | None
    license_link: str | None
    description: str
    citation: str


@dataclass(frozen=True)
class DataSet:
    """One data set: `builder` (settings of its named ``datasets`` builder config, `None` for the ``layout`` config),
    `model` (`TDDetrConfig` keywords on top of the defaults), `training` (its preset) and `card` (model-card facts)."""

    card: DatasetInfo
    training: TrainingPreset
    model: dict = field(default_factory=dict)
    builder: dict | None = None


# Official TD-DETR QVHighlights script (td_detr/scripts/train.sh): 200 epochs of 2N entries, bsz 32, lr 1e-4 dropped
# ×0.1 every 80 epochs, AdamW wd 1e-4 on every parameter, grad-norm clip 0.1, evaluation every epoch, best by val
# MR-full-mAP.
_QVHIGHLIGHTS_TRAINING = TrainingPreset(1e-4, 1e-4, 32, 100, 200, 80, 0.1, 0.1, "MR-full-mAP")

DATA_SETS = {
    "qvhighlights": DataSet(
        builder=dict(
            description="QVHighlights: 2 s clips, SlowFast+CLIP video features, CLIP text features, saliency scores.",
            annotation_files={
                "train": "highlight_train_release.jsonl",
                "validation": "highlight_val_release.jsonl",
                "test": ["highlight_test_with_gt.jsonl", "highlight_test_release.jsonl"],
            },
            clip_length=2.0, max_video_length=75, max_query_length=32, with_saliency=True,
        ),
        # The TDDetrConfig defaults are the QVHighlights run.
        model={},
        training=_QVHIGHLIGHTS_TRAINING,
        card=DatasetInfo(
            pretty_name="QVHighlights",
            dataset_type="qvhighlights",
            eval_split="val",
            has_highlights=True,
            license="cc-by-nc-sa-4.0",
            license_name=None,
            license_link=None,
            description=(
                "QVHighlights (Lei et al., NeurIPS 2021): over 10,000 natural-language queries on about 150-s clips of "
                "YouTube vlog and news videos, each with one or more relevant windows and 5-point saliency scores from "
                "3 annotators on 2-s clips. Standard Moment-DETR splits: train 7,218 / val 1,550 / test 1,542 queries. "
                "The annotations are released under **CC BY-NC-SA 4.0** (non-commercial, share-alike); the videos belong "
                "to their YouTube owners. These weights are derived from that data, so they carry the same licence."
            ),
            citation=(
                "@inproceedings{lei2021qvhighlights,\n"
                "  title     = {QVHighlights: Detecting Moments and Highlights in Videos via Natural Language Queries},\n"
                "  author    = {Lei, Jie and Berg, Tamara L. and Bansal, Mohit},\n"
                "  booktitle = {Advances in Neural Information Processing Systems (NeurIPS)},\n"
                "  year      = {2021}\n"
                "}"
            ),
        ),
    ),
    "charades_sta": DataSet(
        builder=dict(
            description="Charades-STA (QD-DETR-family JSONL): 1 s clips, one window per query, no saliency.",
            annotation_files={"train": "charades_sta_train_tvr_format.jsonl", "test": "charades_sta_test_tvr_format.jsonl"},
            clip_length=1.0, max_video_length=-1, max_query_length=100, with_saliency=False,
        ),
        # Official TD-DETR Charades-STA script (scripts/charadesSTA/train_charades.sh): SlowFast+CLIP features, 1-s
        # clips, no video cap, 3 layers each, span / gIoU 10 / 1, saliency weight 4.
        model=dict(
            clip_length=1.0, max_video_length=None, max_query_length=100, t2v_layers=3, encoder_layers=3,
            decoder_layers=3, matcher_span_cost=10.0, matcher_giou_cost=1.0, span_loss_weight=10.0,
            giou_loss_weight=1.0, saliency_loss_weight=4.0,
        ),
        # 100 epochs of 2N entries, lr 2e-4, no drop within the run (lr_drop 400), bsz 32, grad clip 0.1; selection by
        # R1@0.7 on the evaluation file.
        training=TrainingPreset(2e-4, 1e-4, 32, 32, 100, None, 0.1, 0.1, "MR-full-R1@0.7"),
        card=DatasetInfo(
            pretty_name="Charades-STA",
            dataset_type="charades-sta",
            eval_split="test",
            has_highlights=False,
            license="other",
            license_name="charades-non-commercial",
            license_link="https://prior.allenai.org/projects/charades",
            description=(
                "Charades-STA (Gao et al., ICCV 2017): sentence-level temporal annotations (one window per query; "
                "12,404 train / 3,720 test queries) on Charades indoor activity videos (Sigurdsson et al., ECCV 2016). "
                "There are no saliency labels: the saliency head is trained with pseudo-labels from the window. "
                "Charades is distributed by the Allen Institute for AI for **non-commercial research use only**; check "
                "its licence before using these weights."
            ),
            citation=(
                "@inproceedings{gao2017tall,\n"
                "  title     = {TALL: Temporal Activity Localization via Language Query},\n"
                "  author    = {Gao, Jiyang and Sun, Chen and Yang, Zhenheng and Nevatia, Ram},\n"
                "  booktitle = {Proceedings of the IEEE International Conference on Computer Vision (ICCV)},\n"
                "  year      = {2017}\n"
                "}"
            ),
        ),
    ),
    "synthetic": DataSet(
        # A small TD-DETR for the embedded synthetic data: same architecture, narrower and shallower, so that the
        # default job trains in minutes on two CPU cores. Dropout inside the transformer is off (sampling the masks
        # was about 40% of this model's CPU step; the synthesizer already augments every batch), and it keeps the
        # originals in the batch (1.5·B rows a step instead of the paper's 2·B, a quarter cheaper), as the ablations
        # in docs/RESULTS.md were run.
        model=dict(
            hidden_size=64, num_attention_heads=4, ffn_dim=128, t2v_layers=2, encoder_layers=2, decoder_layers=2,
            dropout=0.0, input_dropout=0.1, synthesis_keep_originals=True,
        ),
        # lr 1e-3: at 3e-4 it barely moves within a few hundred steps (measured on the synthetic data). One pass per
        # epoch.
        training=TrainingPreset(1e-3, 1e-4, 32, 64, 20, 15, 0.1, 1.0, "MR-full-mAP", seed=0, passes_per_epoch=1),
        card=DatasetInfo(
            pretty_name="td-detr synthetic",
            dataset_type="td-detr-synthetic",
            eval_split="validation",
            has_highlights=True,
            license="mit",
            license_name=None,
            license_link=None,
            description=(
                "The synthetic data set that `td-detr make-synthetic` generates (deterministic by seed): clip features "
                "in which an action's signature marks the moment, queries whose tokens name the action, annotator-style "
                "saliency. A demonstration and test bed only: these weights are not useful on real videos."
            ),
            citation="",
        ),
    ),
    # Data in the standard layout without an entry of its own: the QVHighlights model and training settings, which is
    # also the largest row of CUSTOM_SIZE_TIERS; `td-detr train` picks the row that fits the number of queries.
    "custom": DataSet(
        training=_QVHIGHLIGHTS_TRAINING,
        card=DatasetInfo(
            pretty_name="custom data set",
            dataset_type="custom",
            eval_split="validation",
            has_highlights=True,
            license="other",
            license_name="see-training-data",
            license_link=None,
            description="A data set in the standard (QVHighlights) layout supplied by the user; check its licence.",
            citation="",
        ),
    ),
}


@dataclass(frozen=True)
class SizeTier:
    """One row of :data:`CUSTOM_SIZE_TIERS`: custom data with fewer than `below` training queries (`None`: no bound)
    trains `model` (`TDDetrConfig` keywords on top of the defaults) with `training`."""

    name: str
    below: int | None
    model: dict
    training: TrainingPreset


# Custom data (own layout, --train-file / --eval-file): model size and schedule chosen from N, the number of training
# queries. The one table of these settings; the README's copy is `td_detr.training.size_table()`'s output, checked
# by a test.
#   small:  2.3 M parameters with QVHighlights features (paper model: 15 M), 128 wide, and 150 epochs, so 18 queries
#           still get 300 optimizer steps and 999 queries ~9,500 steps: minutes on a CPU, not the paper's hours;
#           lr 5e-4 between the demo's 1e-3 (64 wide) and the paper's 1e-4 (256 wide), dropped once at epoch 120.
#   medium: QD-DETR's size (256 wide, 2 layers each) with the official 100-epoch Charades-STA schedule (lr 2e-4).
#   large:  the paper model with the QVHighlights schedule (7,218 training queries there), as all custom data had.
CUSTOM_SIZE_TIERS = (
    SizeTier("small", 1_000,
             dict(hidden_size=128, num_attention_heads=4, ffn_dim=512,
                  t2v_layers=2, encoder_layers=2, decoder_layers=2),
             TrainingPreset(5e-4, 1e-4, 32, 64, 150, 120, 0.1, 0.1, "MR-full-mAP")),
    SizeTier("medium", 5_000,
             dict(hidden_size=256, num_attention_heads=8, ffn_dim=1024,
                  t2v_layers=2, encoder_layers=2, decoder_layers=2),
             TrainingPreset(2e-4, 1e-4, 32, 64, 100, None, 0.1, 0.1, "MR-full-mAP")),
    SizeTier("large", None, {}, _QVHIGHLIGHTS_TRAINING),
)


def size_tier(num_queries: int) -> SizeTier:
    """The :data:`CUSTOM_SIZE_TIERS` row for custom data with `num_queries` training queries."""
    return next(tier for tier in CUSTOM_SIZE_TIERS if tier.below is None or num_queries < tier.below)


DATASET_ALIASES = {"qvh": "qvhighlights", "charades": "charades_sta", "charades-sta": "charades_sta"}


def resolve_dataset_name(name: str) -> str:
    """The :data:`DATA_SETS` key of a data-set name or alias (``qvh``, ``charades``, ``charades-sta``)."""
    key = DATASET_ALIASES.get(str(name).lower(), str(name).lower())
    if key not in DATA_SETS:
        raise TDDetrInputError(f"unknown dataset {name!r}; expected one of {', '.join(DATA_SETS)}")
    return key


def data_set(name: str) -> DataSet:
    """The entry of a data-set name or alias."""
    return DATA_SETS[resolve_dataset_name(name)]
