"""The oracles of the spurious presets score as the data's structure implies, and the README carries their table."""

from __future__ import annotations

import pytest

from td_detr.data.synthetic import SyntheticWorld, preset_amplitudes, write_synthetic_dataset
from td_detr.data.synthetic_oracles import oracle_scores, oracle_table


@pytest.fixture(scope="module")
def hard_data(tmp_path_factory):
    return write_synthetic_dataset(tmp_path_factory.mktemp("oracles") / "hard", seed=3, size=120, preset="spurious_hard")


@pytest.fixture(scope="module")
def hard_scores(hard_data):
    return oracle_scores(hard_data, SyntheticWorld.from_seed(3), preset_amplitudes("spurious_hard"))


def test_cue_only_finds_the_moment_in_distribution_and_the_decoy_when_shifted(hard_scores):
    for split in ("train", "validation_iid"):  # the cue brackets the moment
        assert hard_scores[split]["cue-only"]["mAP"] == 100.0
    for split in ("validation", "test"):  # the cue brackets a decoy >= 6 clips from every moment: no overlap at all
        assert hard_scores[split]["cue-only"] == {"R1@0.5": 0.0, "R1@0.7": 0.0, "mAP": 0.0}
    assert hard_scores["validation_no_cue"]["cue-only"]["mAP"] < 15.0  # nothing to find


def test_action_only_ignores_where_the_cue_is_and_is_the_harder_signal(hard_scores):
    action = {split: scores["action-only"]["mAP"] for split, scores in hard_scores.items()}
    assert all(20.0 < value < 80.0 for value in action.values())  # learnable, but well below the cue's 100
    assert abs(action["validation"] - action["validation_iid"]) < 20.0  # where the cue is does not matter to it


def test_hard_preset_has_a_fainter_action_than_spurious(hard_data, tmp_path):
    easy = write_synthetic_dataset(tmp_path / "easy", seed=3, size=120, preset="spurious")
    easy_scores = oracle_scores(easy, SyntheticWorld.from_seed(3), preset_amplitudes("spurious"))
    hard_scores = oracle_scores(hard_data, SyntheticWorld.from_seed(3), preset_amplitudes("spurious_hard"))
    for split in ("train", "validation"):
        assert hard_scores[split]["action-only"]["mAP"] < easy_scores[split]["action-only"]["mAP"] - 5.0


def test_readme_table_is_the_oracles_output(hard_data, hard_scores):
    assert oracle_table(hard_scores) in (hard_data / "README.md").read_text()
