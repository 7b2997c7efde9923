"""Sharing TD-DETR on the Hugging Face Hub: named hub configs, model cards and pushing a saved model.

* Named configs (:data:`HUB_PRESETS`): the settings a released checkpoint was trained with, per data set and feature
  set. ``scripts/make_hub_configs.py`` writes them to ``hub_configs/<name>/`` (config + card) and, as package data,
  to ``td_detr/hub_configs/<name>/config.json``, which :func:`load_hub_config` reads, so it works from a wheel.
* :func:`write_model_card`: a model card (YAML metadata with a ``model-index`` built from the official metrics'
  ``brief`` dict) rendered offline with ``huggingface_hub.ModelCard`` from the packaged Jinja template
  ``td_detr/hub_configs/model_card_template.md``.
* :func:`push_model`: upload a ``save_pretrained`` folder (weights, config, card, ``metrics.json``) in one commit.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from huggingface_hub import CommitOperationAdd, EvalResult, HfApi, ModelCard, ModelCardData

from .configuration_td_detr import TDDetrConfig
from .errors import TDDetrInputError

PACKAGE_HUB_CONFIGS = "hub_configs"  # package-data folder inside td_detr
TEMPLATE_NAME = "model_card_template.md"
METRICS_FILE = "metrics.json"
WEIGHT_PATTERNS = ("*.safetensors", "model.safetensors.index.json")


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


DATASETS = {
    "qvhighlights": DatasetInfo(
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
    "charades_sta": DatasetInfo(
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
    "synthetic": DatasetInfo(
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
    "custom": DatasetInfo(
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
}
DATASET_ALIASES = {"qvh": "qvhighlights", "charades": "charades_sta", "charades-sta": "charades_sta"}

SLOWFAST_CLIP_VIDEO = "SlowFast R-50 (2304-d) + CLIP ViT-B/32 (512-d), each L2-normalised, concatenated (2816-d)"
CLIP_TEXT = "CLIP ViT-B/32 text tower, last hidden state per token (512-d)"


@dataclass(frozen=True)
class HubPreset:
    """A named TD-DETR configuration and what its model card says about it."""

    make_config: Callable[[], TDDetrConfig]
    dataset_name: str
    summary: str
    video_features: str
    text_features: str
    feature_note: str = ""
    # What the TD-DETR paper reports for this setting, {where: {metric: value}}; shown for reference in the card,
    # never put in the model-index (they are not results of the checkpoint).
    paper_results: dict = field(default_factory=dict)


HUB_PRESETS = {
    "td-detr-qvh": HubPreset(
        make_config=TDDetrConfig,
        dataset_name="qvhighlights",
        summary="QVHighlights, SlowFast+CLIP features, the official TD-DETR settings (TDDetrConfig defaults).",
        video_features=f"{SLOWFAST_CLIP_VIDEO} per 2-s clip, as released with Moment-DETR",
        text_features=CLIP_TEXT,
        paper_results={
            "QVHighlights val (Table S1, α = 0.7)":
                {"R1@0.5": 65.88, "R1@0.7": 53.67, "mAP@0.5": 66.43, "mAP@0.75": 49.86, "mAP": 49.05},
            "QVHighlights test (Table 1, mean of 3 runs)":
                {"R1@0.5": 64.53, "R1@0.7": 50.37, "mAP@0.5": 66.21, "mAP@0.75": 47.32, "mAP": 46.69},
        },
    ),
    "td-detr-charades": HubPreset(
        make_config=TDDetrConfig.charades_sta,
        dataset_name="charades_sta",
        summary="Charades-STA, SlowFast+CLIP features, the official Charades settings (TDDetrConfig.charades_sta()).",
        video_features=f"{SLOWFAST_CLIP_VIDEO} per 1-s clip, as released with CG-DETR",
        text_features=CLIP_TEXT,
        paper_results={"Charades-STA test (Table 2, mean of 3 runs)": {"R1@0.5": 60.89, "R1@0.7": 40.35}},
    ),
    "td-detr-qvh-internvideo2": HubPreset(
        make_config=lambda: TDDetrConfig(video_feature_size=768, text_feature_size=4096),
        dataset_name="qvhighlights",
        summary="QVHighlights, InternVideo2 video + LLaMA text features (paper Table S3), otherwise the QVHighlights "
        "settings.",
        video_features="InternVideo2-6B video-clip embedding per 2-s clip (768-d)",
        text_features="LLaMA last hidden state per token (4096-d), as paired with InternVideo2",
        feature_note=(
            "The paper does not list the InternVideo2 feature sizes. 768-d video and 4096-d text are those of the "
            "InternVideo2 QVHighlights features the moment-retrieval community shares (Hub data sets "
            "`cg1177/qvhighlight_internvideo2_videoclip_6b_w2s` and "
            "`cg1177/qvhighlight_internvideo2_llama_text_feature`) "
            "and of the training scripts that read them: FlashVTG `FlashVTG/scripts/qv_internvideo2/train.sh` "
            "(`v_feat_dim=768`, `t_feat_dim=4096`, `video_tef`, `max_v_l=75`) and a CG-DETR-style script adding 768 "
            "for `qvhighlight_internvideo2_videoclip_6b_w2s` and 4096 for the LLaMA text features. The other "
            "hyper-parameters are not given for this setting in the paper; the QVHighlights ones are used."
        ),
        paper_results={
            "QVHighlights val, InternVideo2 features (Table S3)":
                {"R1@0.5": 71.29, "R1@0.7": 57.23, "mAP@0.5": 72.99, "mAP@0.75": 54.94, "mAP": 53.23},
        },
    ),
    "td-detr-qvh-clip": HubPreset(
        make_config=lambda: TDDetrConfig(video_feature_size=512, text_feature_size=512),
        dataset_name="qvhighlights",
        summary="QVHighlights, CLIP-only features (for the raw-video pipeline), otherwise the QVHighlights settings.",
        video_features="CLIP ViT-B/32 image embedding per 2-s clip (512-d); the model appends the 2 TEF channels",
        text_features=CLIP_TEXT,
        feature_note="CLIP-only features need no SlowFast extractor, so raw videos can be featurised with CLIP alone.",
    ),
}
HUB_CONFIG_NAMES = tuple(HUB_PRESETS)

# model-index entries: brief key -> (task type, task name, metric type, metric name)
_MOMENT = ("video-moment-retrieval", "Video Moment Retrieval")
_HIGHLIGHT = ("highlight-detection", "Highlight Detection")
MODEL_INDEX_METRICS = {
    "MR-full-R1@0.3": (*_MOMENT, "R1@0.3", "R1@0.3"),
    "MR-full-R1@0.5": (*_MOMENT, "R1@0.5", "R1@0.5"),
    "MR-full-R1@0.7": (*_MOMENT, "R1@0.7", "R1@0.7"),
    "MR-full-mAP@0.5": (*_MOMENT, "mAP@0.5", "mAP@0.5"),
    "MR-full-mAP@0.75": (*_MOMENT, "mAP@0.75", "mAP@0.75"),
    "MR-full-mAP": (*_MOMENT, "mAP", "mAP (IoU 0.5:0.05:0.95)"),
    "MR-full-mIoU": (*_MOMENT, "mIoU", "mIoU"),
    "HL-min-VeryGood-mAP": (*_HIGHLIGHT, "HL-mAP", "HL mAP (>= Very Good)"),
    "HL-min-VeryGood-Hit1": (*_HIGHLIGHT, "HIT@1", "HIT@1 (>= Very Good)"),
}

TD_DETR_CITATION = (
    "@inproceedings{zhou2025tddetr,\n"
    "  title     = {The Devil is in the Spurious Correlations: Boosting Moment Retrieval with Dynamic Learning},\n"
    "  author    = {Zhou, Xinyang and Wei, Fanyue and Duan, Lixin and Yao, Angela and Li, Wen},\n"
    "  booktitle = {Proceedings of the IEEE/CVF International Conference on Computer Vision (ICCV)},\n"
    "  year      = {2025}\n"
    "}"
)


# -- hub configs ------------------------------------------------------------------------------------------------------
def _packaged(*parts: str):
    node = resources.files("td_detr") / PACKAGE_HUB_CONFIGS
    for part in parts:
        node = node / part
    return node


def _config_from_json(text: str, where: str) -> TDDetrConfig:
    try:
        values = json.loads(text)
    except json.JSONDecodeError as error:
        raise TDDetrInputError(f"{where}: not valid JSON ({error})") from None
    if not isinstance(values, dict) or values.get("model_type") != TDDetrConfig.model_type:
        found = values.get("model_type") if isinstance(values, dict) else type(values).__name__
        raise TDDetrInputError(f"{where}: model_type is {found!r}, expected {TDDetrConfig.model_type!r}")
    return TDDetrConfig.from_dict(values)


def load_hub_config(name_or_path: str | Path) -> TDDetrConfig:
    """A :class:`TDDetrConfig` from a hub-config name (one of :data:`HUB_CONFIG_NAMES`, shipped as package data),
    a folder holding ``config.json`` (e.g. ``hub_configs/td-detr-qvh`` or a ``save_pretrained`` folder) or a JSON
    file. A name string wins over a same-named folder in the working directory (pass ``./name`` or a ``Path`` for
    the folder). Raises :class:`TDDetrInputError` naming the known names when nothing matches."""
    if isinstance(name_or_path, str) and name_or_path in HUB_PRESETS:
        packaged = _packaged(name_or_path, "config.json")
        where = f"td_detr/{PACKAGE_HUB_CONFIGS}/{name_or_path}/config.json"
        return _config_from_json(packaged.read_text(encoding="utf-8"), where)
    path = Path(name_or_path)
    if path.is_dir():
        path = path / "config.json"
        if not path.is_file():
            raise TDDetrInputError(f"{path.parent}: no config.json in this folder")
    if path.is_file():
        return _config_from_json(path.read_text(encoding="utf-8"), str(path))
    raise TDDetrInputError(
        f"unknown hub config {str(name_or_path)!r}: not a file or folder, and not one of {', '.join(HUB_CONFIG_NAMES)}"
    )


def preset_for(config: TDDetrConfig, dataset_name: str) -> HubPreset | None:
    """The hub preset trained on `dataset_name` with the same feature sizes as `config` (for the card text)."""
    for preset in HUB_PRESETS.values():
        reference = preset.make_config()
        if preset.dataset_name == dataset_name and (reference.video_feature_size, reference.text_feature_size) == (
            config.video_feature_size, config.text_feature_size
        ):
            return preset
    return None


# -- metrics and model card -------------------------------------------------------------------------------------------
def brief_metrics(metrics: dict | None) -> dict[str, float]:
    """The ``brief`` dict of an official-style metrics dict (or the dict itself when it is already flat)."""
    if not metrics:
        return {}
    brief = metrics.get("brief", metrics)
    if not isinstance(brief, dict):
        raise TDDetrInputError(f"metrics: 'brief' must be a dict of numbers, got {type(brief).__name__}")
    return {k: float(v) for k, v in brief.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def read_metrics(path: str | Path) -> dict:
    """Read a ``metrics.json`` (as ``td-detr evaluate`` / ``score --output`` write it), naming the file on error."""
    path = Path(path)
    try:
        metrics = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise TDDetrInputError(f"{path}: cannot read metrics ({error})") from None
    if not isinstance(metrics, dict):
        raise TDDetrInputError(f"{path}: expected a JSON object of metrics, got {type(metrics).__name__}")
    return metrics


def resolve_dataset_name(dataset_name: str) -> str:
    """The :data:`DATASETS` key for a data-set name or alias (``qvh``, ``charades``, ``charades-sta``)."""
    key = DATASET_ALIASES.get(dataset_name.lower(), dataset_name.lower())
    if key not in DATASETS:
        raise TDDetrInputError(f"unknown dataset {dataset_name!r}; expected one of {', '.join(DATASETS)}")
    return key


def infer_dataset_name(config: TDDetrConfig, metrics: dict | None = None) -> str:
    """Best guess of the training data set: highlight metrics mean QVHighlights; 1-s clips mean Charades-STA."""
    brief = brief_metrics(metrics)
    if any(key.startswith("HL-") for key in brief):
        return "qvhighlights"
    return "charades_sta" if float(config.clip_length) == 1.0 else "qvhighlights"


def model_index_results(metrics: dict | None, dataset_name: str) -> list[EvalResult]:
    """`EvalResult`s for the brief metrics listed in :data:`MODEL_INDEX_METRICS` that `metrics` holds."""
    dataset = DATASETS[resolve_dataset_name(dataset_name)]
    brief = brief_metrics(metrics)
    return [
        EvalResult(
            task_type=task_type, task_name=task_name, dataset_type=dataset.dataset_type,
            dataset_name=dataset.pretty_name, dataset_split=dataset.eval_split,
            metric_type=metric_type, metric_name=metric_name, metric_value=brief[key],
        )
        for key, (task_type, task_name, metric_type, metric_name) in MODEL_INDEX_METRICS.items()
        if key in brief
    ]


def build_model_card(
    config: TDDetrConfig,
    metrics: dict | None = None,
    *,
    dataset_name: str,
    model_id: str = "td-detr",
    base_model: str | None = None,
    template: str | Path | None = None,
) -> ModelCard:
    """Render a TD-DETR model card (offline); see :func:`write_model_card`."""
    from . import __version__
    from .metrics.table import format_metrics_table

    key = resolve_dataset_name(dataset_name)
    dataset = DATASETS[key]
    eval_results = model_index_results(metrics, key)
    tags = ["td-detr", "video-moment-retrieval", "temporal-grounding", "detr", "video-text"]
    if dataset.has_highlights:
        tags.insert(2, "highlight-detection")
    card_data = ModelCardData(
        model_name=model_id.split("/")[-1],
        library_name="transformers",
        license=dataset.license,
        license_name=dataset.license_name,
        license_link=dataset.license_link,
        language=["en"],
        datasets=[dataset.pretty_name],
        metrics=["recall", "mean_average_precision"],
        tags=tags,
        base_model=base_model,
        eval_results=eval_results or None,
    )
    preset = preset_for(config, key)
    source = _packaged(TEMPLATE_NAME) if template is None else Path(template)
    template_text = source.read_text(encoding="utf-8")
    metric_rows = [(result.metric_name, result.metric_value) for result in eval_results]
    return ModelCard.from_template(
        card_data,
        template_str=template_text,
        model_name=card_data.model_name,
        model_id=model_id,
        config=config,
        dataset=dataset,
        preset=preset,
        metric_rows=metric_rows,
        metrics_table=format_metrics_table(metrics) if metrics else "",
        td_detr_citation=TD_DETR_CITATION,
        td_detr_version=__version__,
    )


def write_model_card(
    output_dir: str | Path,
    config: TDDetrConfig,
    metrics: dict | None = None,
    *,
    dataset_name: str,
    base_model: str | None = None,
    template: str | Path | None = None,
    model_id: str | None = None,
) -> ModelCard:
    """Write ``output_dir/README.md``: a model card for a TD-DETR checkpoint, built offline.

    Args:
        output_dir: folder to write README.md into (created if missing).
        config: the model's config (its sizes, layers and loss weights are listed in the card).
        metrics: the official-style metrics dict (``evaluate_submission`` / ``metrics.json``) or a flat ``brief``
            dict; its brief R1@0.5 / R1@0.7 / mAP / HL-mAP / HIT@1 (when present) fill the YAML ``model-index``.
            None: no model-index, the card says no evaluation was supplied.
        dataset_name: training data set, ``"qvhighlights"`` or ``"charades_sta"`` (licence, tags, model-index).
        base_model: Hub id this checkpoint was fine-tuned from, if any.
        template: a Jinja model-card template; defaults to the packaged ``model_card_template.md``.
        model_id: repo id shown in the title and usage snippet; defaults to the folder name.

    Returns:
        the :class:`huggingface_hub.ModelCard` that was written.
    """
    output_dir = Path(output_dir)
    card = build_model_card(
        config, metrics, dataset_name=dataset_name, model_id=model_id or output_dir.resolve().name,
        base_model=base_model, template=template,
    )
    output_dir.mkdir(parents=True, exist_ok=True)
    card.save(output_dir / "README.md")
    return card


# -- pushing ----------------------------------------------------------------------------------------------------------
def check_saved_model(model_dir: str | Path) -> tuple[TDDetrConfig, list[Path]]:
    """Validate a ``save_pretrained`` folder of a TD-DETR model; return its config and weight files.

    Raises :class:`TDDetrInputError` for a missing folder, a missing / unreadable ``config.json``, a
    ``model_type`` other than ``td_detr`` or no safetensors weights.
    """
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise TDDetrInputError(f"{model_dir}: no such folder")
    config_path = model_dir / "config.json"
    if not config_path.is_file():
        raise TDDetrInputError(
            f"{model_dir}: not a saved TD-DETR model: no config.json (save it with model.save_pretrained(folder))"
        )
    config = _config_from_json(config_path.read_text(encoding="utf-8"), str(config_path))
    weights = sorted({p for pattern in WEIGHT_PATTERNS for p in model_dir.glob(pattern)})
    if not any(p.suffix == ".safetensors" for p in weights):
        legacy = (model_dir / "pytorch_model.bin").exists()
        hint = " (found pytorch_model.bin: re-save with save_pretrained)" if legacy else ""
        raise TDDetrInputError(f"{model_dir}: not a saved TD-DETR model: no *.safetensors weights{hint}")
    return config, weights


def push_model(
    model_dir: str | Path,
    repo_id: str,
    *,
    private: bool = False,
    token: str | None = None,
    commit_message: str = "Upload TD-DETR model",
    dataset_name: str | None = None,
    base_model: str | None = None,
):
    """Upload a saved TD-DETR model to the Hub in one commit: weights (``*.safetensors``), ``config.json``,
    ``metrics.json`` when present and a model card.

    The folder's own ``README.md`` is uploaded when it has one; otherwise a card is rendered with
    :func:`build_model_card` from the config and ``metrics.json`` (data set: `dataset_name`, or guessed by
    :func:`infer_dataset_name`). The repo is created when missing (`private` applies only then). `token` defaults
    to the logged-in / ``HF_TOKEN`` token; the endpoint follows ``HF_ENDPOINT``.

    Returns:
        the :class:`huggingface_hub.CommitInfo` of the upload (``.commit_url``, ``.oid``).
    """
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    model_dir = Path(model_dir)
    try:
        validate_repo_id(repo_id)
    except HFValidationError as error:
        raise TDDetrInputError(f"--repo-id {repo_id!r}: {error}") from None
    config, weights = check_saved_model(model_dir)
    metrics_path = model_dir / METRICS_FILE
    metrics = read_metrics(metrics_path) if metrics_path.is_file() else None
    files = [model_dir / "config.json", *weights] + ([metrics_path] if metrics is not None else [])
    operations = [CommitOperationAdd(path_in_repo=p.name, path_or_fileobj=str(p)) for p in files]
    card_path = model_dir / "README.md"
    if card_path.is_file():
        operations.append(CommitOperationAdd(path_in_repo="README.md", path_or_fileobj=str(card_path)))
    else:
        dataset = resolve_dataset_name(dataset_name) if dataset_name else infer_dataset_name(config, metrics)
        card = build_model_card(config, metrics, dataset_name=dataset, model_id=repo_id, base_model=base_model)
        operations.append(CommitOperationAdd(path_in_repo="README.md", path_or_fileobj=str(card).encode("utf-8")))

    api = HfApi(token=token)
    api.create_repo(repo_id, private=private, exist_ok=True)
    return api.create_commit(repo_id, operations=operations, commit_message=commit_message)


__all__ = [
    "DATASETS",
    "HUB_CONFIG_NAMES",
    "HUB_PRESETS",
    "MODEL_INDEX_METRICS",
    "DatasetInfo",
    "HubPreset",
    "brief_metrics",
    "build_model_card",
    "check_saved_model",
    "infer_dataset_name",
    "load_hub_config",
    "model_index_results",
    "preset_for",
    "push_model",
    "read_metrics",
    "write_model_card",
]
