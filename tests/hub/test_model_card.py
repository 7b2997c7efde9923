"""Model cards written offline: YAML metadata, model-index from the brief metrics, round trip through ModelCard.load."""

from __future__ import annotations

import pytest
from huggingface_hub import ModelCard

from td_detr import TDDetrConfig
from td_detr.errors import TDDetrInputError
from td_detr.hub import MODEL_INDEX_METRICS, brief_metrics, infer_dataset_name, write_model_card
from td_detr.metrics import evaluate_submission, read_jsonl

from fixture_files import QVHIGHLIGHTS, REFERENCE_PREDICTIONS

BRIEF = {
    "MR-full-R1@0.3": 70.5, "MR-full-R1@0.5": 62.25, "MR-full-R1@0.7": 47.0, "MR-full-mAP": 41.5,
    "MR-full-mAP@0.5": 61.0, "MR-full-mAP@0.75": 42.75, "MR-full-mIoU": 55.5, "MR-short-mAP": 4.0,
    "HL-min-Fair-mAP": 70.0, "HL-min-VeryGood-mAP": 40.25, "HL-min-VeryGood-Hit1": 64.5,
}
EXPECTED_INDEX = {"R1@0.3": 70.5, "R1@0.5": 62.25, "R1@0.7": 47.0, "mAP": 41.5, "mAP@0.5": 61.0, "mAP@0.75": 42.75,
                  "mIoU": 55.5, "HL-mAP": 40.25, "HIT@1": 64.5}


def index_of(card: ModelCard) -> dict[str, float]:
    return {result.metric_type: result.metric_value for result in card.data.eval_results or []}


def test_qvhighlights_card_round_trip(tmp_path):
    written = write_model_card(tmp_path / "card", TDDetrConfig(), {"brief": BRIEF}, dataset_name="qvhighlights",
                               model_id="org/td-detr-qvh")
    card = ModelCard.load(tmp_path / "card" / "README.md")
    assert card.data.to_dict() == written.data.to_dict()
    assert index_of(card) == EXPECTED_INDEX  # MR-short-mAP and HL-min-Fair-mAP are not model-index entries
    tasks = {r.metric_type: r.task_type for r in card.data.eval_results}
    assert tasks["HIT@1"] == "highlight-detection" and tasks["R1@0.7"] == "video-moment-retrieval"
    assert {r.dataset_split for r in card.data.eval_results} == {"val"}
    assert card.data.library_name == "transformers"
    assert card.data.license == "cc-by-nc-sa-4.0"
    assert card.data.datasets == ["QVHighlights"]
    assert {"td-detr", "video-moment-retrieval", "highlight-detection"} <= set(card.data.tags)
    assert card.data.model_name == "td-detr-qvh"
    text = card.text
    assert 'TDDetrForMomentRetrieval.from_pretrained("org/td-detr-qvh")' in text
    assert "td-detr predict --model org/td-detr-qvh" in text
    assert "CC BY-NC-SA 4.0" in text
    assert "author    = {Zhou, Xinyang and Wei, Fanyue and Duan, Lixin and Yao, Angela and Li, Wen}" in text
    assert "| R1@0.7 | 47.00 |" in text
    # the paper's numbers are quoted as such, never as this checkpoint's results
    assert "R1@0.7 53.67" in text and 53.67 not in index_of(card).values()


def test_card_without_metrics_has_no_model_index(tmp_path):
    card = write_model_card(tmp_path, TDDetrConfig.charades_sta(), None, dataset_name="charades-sta")
    loaded = ModelCard.load(tmp_path / "README.md")
    assert loaded.data.eval_results is None and "model-index:" not in loaded.content
    assert loaded.data.license == "other" and loaded.data.license_name == "charades-non-commercial"
    assert "highlight-detection" not in loaded.data.tags
    assert "No evaluation results were supplied" in card.text
    assert "1.0 s per clip, no clip limit" in card.text
    assert loaded.data.model_name == tmp_path.name  # defaults to the folder name


def test_card_from_the_real_evaluator_output(tmp_path):
    ground_truth = read_jsonl(QVHIGHLIGHTS / "highlight_val_release.jsonl")
    metrics = evaluate_submission(read_jsonl(REFERENCE_PREDICTIONS), ground_truth)
    write_model_card(tmp_path, TDDetrConfig(), metrics, dataset_name="qvhighlights", model_id="org/m")
    values = index_of(ModelCard.load(tmp_path / "README.md"))
    expected = {MODEL_INDEX_METRICS[k][2]: v for k, v in metrics["brief"].items() if k in MODEL_INDEX_METRICS}
    assert values == expected and len(values) == len(MODEL_INDEX_METRICS)
    assert "Highlight detection" in (tmp_path / "README.md").read_text()  # the full table is in the body


def test_custom_template(tmp_path):
    template = tmp_path / "t.md"
    template.write_text("---\n{{ card_data }}\n---\n# {{ model_id }} has {{ config.num_queries }} queries\n")
    card = write_model_card(tmp_path / "out", TDDetrConfig(num_queries=7), {"brief": BRIEF},
                            dataset_name="qvhighlights", template=template, model_id="org/x")
    assert card.text.strip() == "# org/x has 7 queries"
    assert index_of(ModelCard.load(tmp_path / "out" / "README.md")) == EXPECTED_INDEX


def test_bad_card_inputs(tmp_path):
    with pytest.raises(TDDetrInputError, match="unknown dataset 'tacos'"):
        write_model_card(tmp_path, TDDetrConfig(), None, dataset_name="tacos")
    with pytest.raises(TDDetrInputError, match="'brief' must be a dict"):
        brief_metrics({"brief": [1, 2]})


def test_infer_dataset_name():
    assert infer_dataset_name(TDDetrConfig.charades_sta()) == "charades_sta"
    assert infer_dataset_name(TDDetrConfig()) == "qvhighlights"
    assert infer_dataset_name(TDDetrConfig.charades_sta(), {"brief": {"HL-min-VeryGood-mAP": 1.0}}) == "qvhighlights"
