"""Sharing TD-DETR on the Hugging Face Hub: named hub configs, model cards and pushing a saved model.

* Named configs (:data:`HUB_PRESETS`): the settings a released checkpoint was trained with, per data set and feature
  set, built from :data:`td_detr.registry.DATA_SETS` (:func:`load_hub_config` builds them, so it works from a
  wheel). ``scripts/make_hub_configs.py`` generates the committed ``hub_configs/<name>/`` (config + card, what is
  uploaded) from them; ``--check`` (and a test) says when the committed files are stale.
* :func:`write_model_card`: a model card (YAML metadata with a ``model-index`` built from the official metrics'
  ``brief`` dict) rendered offline with ``huggingface_hub.ModelCard`` from the packaged Jinja template
  ``td_detr/hub_configs/model_card_template.md``.
* :func:`push_model`: upload a ``save_pretrained`` folder (weights, config, card, ``metrics.json``) in one commit.
"""

from __future__ import annotations

import json
from importlib import resources
from importlib.metadata import version
from pathlib import Path

from huggingface_hub import EvalResult, HfApi, ModelCard, ModelCardData
from huggingface_hub.errors import StrictDataclassError
from huggingface_hub import constants

from .configuration_td_detr import TDDetrConfig
from .errors import TDDetrInputError
from .registry import resolve_dataset_name
from .strict_loading import check_safetensors

PACKAGE_HUB_CONFIGS = "hub_configs"  # package-data folder inside td_detr
TEMPLATE_NAME = "model_card_template.md"
METRICS_FILE = "metrics.json"
WEIGHT_PATTERNS = ("*.safetensors", "model.safetensors.index.json")

from .hub_presets import (  # noqa: E402  (re-exported: the public names of td_detr.hub)
    DATASET_ALIASES,
    DATASETS,
    HUB_CONFIG_NAMES,
    HUB_PRESETS,
    MODEL_INDEX_METRICS,
    TD_DETR_CITATION,
    DatasetInfo,
    HubPreset,
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
    if not isinstance(values, dict):
        raise TDDetrInputError(f"{where}: expected a JSON object, got {type(values).__name__}")
    try:
        return TDDetrConfig.from_dict(values)  # checks model_type, field types and values
    except (ValueError, StrictDataclassError) as error:
        raise TDDetrInputError(f"{where}: {' '.join(str(error).split())}") from None


def load_hub_config(name_or_path: str | Path) -> TDDetrConfig:
    """A :class:`TDDetrConfig` from a hub-config name (one of :data:`HUB_CONFIG_NAMES`, built from the registry),
    a folder holding ``config.json`` (e.g. ``hub_configs/td-detr-qvh`` or a ``save_pretrained`` folder) or a JSON
    file. A name string wins over a same-named folder in the working directory (pass ``./name`` or a ``Path`` for
    the folder). Raises :class:`TDDetrInputError` naming the known names when nothing matches."""
    if isinstance(name_or_path, str) and name_or_path in HUB_PRESETS:
        return HUB_PRESETS[name_or_path].make_config()
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


def hub_preset_for(config: TDDetrConfig, dataset_name: str) -> HubPreset | None:
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
    preset = hub_preset_for(config, key)
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
        td_detr_version=version("td-detr"),
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
    ``model_type`` other than ``td_detr``, no safetensors weights or a weight file that is not readable safetensors
    (empty, truncated, garbled).
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
    for path in weights:
        if path.suffix == ".safetensors":
            check_safetensors(path)
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
    """Upload a saved TD-DETR model to the Hub in one commit (``HfApi.upload_folder``): weights (``*.safetensors``),
    ``config.json``, ``metrics.json`` when present and a model card. The folder is checked first (see
    :func:`check_saved_model`): nothing is uploaded from a folder with unreadable weights.

    The folder's own ``README.md`` is uploaded when it has one; otherwise a card is rendered with
    :func:`build_model_card` from the config and ``metrics.json`` (data set: `dataset_name`, or guessed by
    :func:`infer_dataset_name`) and saved there first, so the folder and the repo hold the same card. The repo is
    created when missing (`private` applies only then). `token` defaults to the logged-in / ``HF_TOKEN`` token; the
    endpoint follows ``HF_ENDPOINT``.

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
    processor_path = model_dir / "preprocessor_config.json"  # the TDDetrProcessor saved with the model
    files = [model_dir / "config.json", *weights] + ([metrics_path] if metrics is not None else [])
    files += [processor_path] if processor_path.is_file() else []
    card_path = model_dir / "README.md"
    if not card_path.is_file():
        dataset = resolve_dataset_name(dataset_name) if dataset_name else infer_dataset_name(config, metrics)
        build_model_card(config, metrics, dataset_name=dataset, model_id=repo_id, base_model=base_model).save(card_path)

    from .hub_access import HUB_TIMEOUT_SECONDS, HubUnreachableError, hub_answers

    if not hub_answers(constants.ENDPOINT):  # after every local check: bad input is reported as such
        raise HubUnreachableError(f"the Hub ({constants.ENDPOINT}) does not answer within {HUB_TIMEOUT_SECONDS:g} s; "
                                  "nothing was uploaded")
    api = HfApi(token=token)
    api.create_repo(repo_id, private=private, exist_ok=True)
    return api.upload_folder(repo_id=repo_id, folder_path=model_dir, commit_message=commit_message,
                             allow_patterns=[path.name for path in files] + [card_path.name])


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
    "hub_preset_for",
    "push_model",
    "read_metrics",
    "write_model_card",
]
