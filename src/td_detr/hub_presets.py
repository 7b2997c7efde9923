"""What the Hub side knows about data sets and named configs: licences, descriptions and citations of the data sets
(:data:`DATASETS`), the named TD-DETR configs with their feature descriptions (:data:`HUB_PRESETS`), and which metrics
go into a model card's model-index (:data:`MODEL_INDEX_METRICS`). Data only; :mod:`td_detr.hub` uses it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from .configuration_td_detr import TDDetrConfig


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
        summary="QVHighlights, SlowFast+CLIP features, the paper's TD-DETR (TDDetrConfig defaults; the official run's "
                "hyper-parameters).",
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
        summary="Charades-STA, SlowFast+CLIP features, the official Charades hyper-parameters "
                "(TDDetrConfig.charades_sta()).",
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
