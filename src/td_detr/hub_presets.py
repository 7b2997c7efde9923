"""What the Hub side knows about data sets and named configs: licences, descriptions and citations of the data sets
(:data:`DATASETS`, from :data:`td_detr.registry.DATA_SETS`), the named TD-DETR configs with their feature descriptions (:data:`HUB_PRESETS`), and which metrics
go into a model card's model-index (:data:`MODEL_INDEX_METRICS`). Data only; :mod:`td_detr.hub` uses it."""

from __future__ import annotations

from dataclasses import dataclass, field

from .configuration_td_detr import TDDetrConfig
from .registry import DATA_SETS, DATASET_ALIASES, DatasetInfo  # noqa: F401  (DatasetInfo: re-exported)


# Model-card facts per data set (licence, description, citation) live in the registry with everything else about it.
DATASETS = {name: entry.card for name, entry in DATA_SETS.items()}

SLOWFAST_CLIP_VIDEO = "SlowFast R-50 (2304-d) + CLIP ViT-B/32 (512-d), each L2-normalised, concatenated (2816-d)"
CLIP_TEXT = "CLIP ViT-B/32 text tower, last hidden state per token (512-d)"


@dataclass(frozen=True)
class HubPreset:
    """A named TD-DETR configuration and what its model card says about it: the data set's model settings
    (`td_detr.registry`) with `model` (e.g. other feature sizes) on top."""

    dataset_name: str
    summary: str
    video_features: str
    text_features: str
    feature_note: str = ""
    # What the TD-DETR paper reports for this setting, {where: {metric: value}}; shown for reference in the card,
    # never put in the model-index (they are not results of the checkpoint).
    paper_results: dict = field(default_factory=dict)
    model: dict = field(default_factory=dict)

    def make_config(self) -> TDDetrConfig:
        return TDDetrConfig.for_data_set(self.dataset_name, **self.model)


HUB_PRESETS = {
    "td-detr-qvh": HubPreset(
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
        dataset_name="charades_sta",
        summary="Charades-STA, SlowFast+CLIP features, the official Charades hyper-parameters "
                "(TDDetrConfig.charades_sta()).",
        video_features=f"{SLOWFAST_CLIP_VIDEO} per 1-s clip, as released with CG-DETR",
        text_features=CLIP_TEXT,
        paper_results={"Charades-STA test (Table 2, mean of 3 runs)": {"R1@0.5": 60.89, "R1@0.7": 40.35}},
    ),
    "td-detr-qvh-internvideo2": HubPreset(
        model=dict(video_feature_size=768, text_feature_size=4096),
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
        model=dict(video_feature_size=512, text_feature_size=512),
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
