"""Paths of the vendored real-data fixtures (cuts of the QVHighlights and Charades-STA annotation files and of the
reference prediction file, with the official evaluator's numbers; see fixtures/README.md)."""

from pathlib import Path

FIXTURES = Path(__file__).resolve().parent / "fixtures"
QVHIGHLIGHTS = FIXTURES / "qvhighlights"
CHARADES_STA = FIXTURES / "charades_sta"
REFERENCE_PREDICTIONS = QVHIGHLIGHTS / "reference_predictions" / "sample_val_preds.jsonl"
REFERENCE_OFFICIAL_METRICS = QVHIGHLIGHTS / "reference_predictions" / "sample_val_preds_official_metrics.json"
