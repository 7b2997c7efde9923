"""Oracles of the spurious synthetic presets: what each split tests, before any model is trained.

Two hand-written predictors read the generated features with the generator's own signatures (a matched filter,
:class:`~td_detr.data.synthetic.SyntheticWorld`), and are scored with the project's metrics on every split:

* **cue-only**: finds the query action's *cue* blocks and predicts the stretch between each consecutive pair. It
  never looks at the action. In ``train`` / ``validation_iid`` that stretch is the moment; in the shifted splits
  (``validation``, ``test``) it is the decoy; in ``validation_no_cue`` there is nothing to find.
* **action-only**: predicts the runs of clips where the query action's signature is present, read off the span of
  the cue signatures (so a cue next to the moment cannot leak into it). It never looks at the cue, so it scores
  about the same on every split; how far it is from 100 says how hard the action is to read.

A model that learned the shortcut behaves like the cue-only oracle; one that learned the task, like the action-only
one. :func:`oracle_table` is the table that `td-detr make-synthetic` writes into the data folder's README (and
docs/RESULTS.md copies its output). The generator's signatures and strengths are passed in (this module does not
import the generator, which imports it).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..metrics import evaluate_submission
from .layout import load_video_feature_types, read_annotations

ORACLES = ("cue-only", "action-only")
SCORED_KEYS = (("R1@0.5", "MR-full-R1@0.5"), ("R1@0.7", "MR-full-R1@0.7"), ("mAP", "MR-full-mAP"))
ACTION_THRESHOLD = 0.4  # in units of the full action strength (a segment's edges have 0.55)
CUE_THRESHOLD = 0.5  # in units of the cue strength


def _matched_filter(arrays, signatures, amplitudes, noise) -> np.ndarray:
    """Per clip, the signature's strength estimated from every feature type (weighted by its signal-to-noise ratio),
    in units of the full strength, with the video's median removed (the scene and drift offsets)."""
    weights = [a * x.shape[1] / n ** 2 for a, n, x in zip(amplitudes, noise, arrays)]
    length = min(len(x) for x in arrays)
    response = sum(w * (x[:length] @ s) for w, x, s in zip(weights, arrays, signatures))
    response = response / sum(w * a for w, a in zip(weights, amplitudes))
    return response - np.median(response)


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) of every maximal run of True."""
    edges = np.diff(np.concatenate([[0], mask.astype(int), [0]]))
    return list(zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist()))


def _windows(spans, response, clip_length: float) -> list[list[float]]:
    """[start s, end s, score] per span, best first; the whole video at score 0 when there is none."""
    scored = [[st * clip_length, ed * clip_length, round(float(response[st:ed].mean()), 4)] for st, ed in spans if ed > st]
    return sorted(scored, key=lambda w: -w[2]) or [[0.0, len(response) * clip_length, 0.0]]


def cue_only_windows(arrays, world, action: int, amps, clip_length: float) -> list[list[float]]:
    """The stretch between each consecutive pair of detected cue blocks (1st-2nd, 3rd-4th, ...)."""
    response = _matched_filter(arrays, [c[action] for c in world.cue_signatures], amps.cue, amps.noise)
    blocks = _runs(response > CUE_THRESHOLD)
    spans = [(blocks[i][1], blocks[i + 1][0]) for i in range(0, len(blocks) - 1, 2)]
    return _windows(spans, -np.abs(response) + 1.0, clip_length)  # a gap scores by how cue-free it is


def _without_cues(arrays, cue_signatures):
    """Each feature type projected off the span of every action's cue signature (random signatures are not
    orthogonal: a strong cue next to the moment would otherwise leak into the action's direction)."""
    projected = []
    for x, cues in zip(arrays, cue_signatures):
        basis, _ = np.linalg.qr(cues.T)  # [D, A]: orthonormal basis of the cue span
        projected.append(x - (x @ basis) @ basis.T)
    return projected


def action_only_windows(arrays, world, action: int, amps, clip_length: float) -> list[list[float]]:
    """Runs of clips whose (3-clip smoothed) action strength, read off the cue span, exceeds
    :data:`ACTION_THRESHOLD`."""
    signatures = _without_cues([a[action][None] for a in world.action_signatures], world.cue_signatures)
    response = _matched_filter(_without_cues(arrays, world.cue_signatures), [s[0] for s in signatures],
                               amps.action, amps.noise)
    smooth = np.convolve(response, np.ones(3) / 3, mode="same")
    return _windows(_runs(smooth > ACTION_THRESHOLD), smooth, clip_length)


def oracle_scores(data_dir, world, amps) -> dict:
    """{split: {oracle: {R1@0.5, R1@0.7, mAP}}} in % of a spurious synthetic data set folder (its dataset_info.json
    names the splits, actions and clip length) generated from `world` (a SyntheticWorld) with strengths `amps`."""
    data_dir = Path(data_dir)
    info = json.loads((data_dir / "dataset_info.json").read_text(encoding="utf-8"))
    actions, clip_length = info["actions"], info["clip_length"]
    folders = [data_dir / folder for folder in info["video_feature_dirs"]]
    predictors = {"cue-only": cue_only_windows, "action-only": action_only_windows}
    scores = {}
    for split, file in info["splits"].items():
        records = read_annotations(data_dir / file)
        submissions = {name: [] for name in ORACLES}
        for record in records:
            arrays = load_video_feature_types(record["vid"], folders)
            action = actions.index(record["action"])
            for name in ORACLES:
                windows = predictors[name](arrays, world, action, amps, clip_length)
                submissions[name].append({"qid": record["qid"], "pred_relevant_windows": windows})
        scores[split] = {}
        for name in ORACLES:
            brief = evaluate_submission(submissions[name], records, highlights=False)["brief"]
            scores[split][name] = {label: float(brief[key]) for label, key in SCORED_KEYS}
    return scores


def oracle_table(scores: dict) -> str:
    """Markdown: one row per split, R1@0.5 / R1@0.7 / mAP of each oracle."""
    header = "| split | " + " | ".join(f"{o} {label}" for o in ORACLES for label, _ in SCORED_KEYS) + " |"
    lines = [header, "|" + "---|" * (1 + len(ORACLES) * len(SCORED_KEYS))]
    for split, by_oracle in scores.items():
        cells = [f"{by_oracle[o][label]:.2f}" for o in ORACLES for label, _ in SCORED_KEYS]
        lines.append(f"| `{split}` | " + " | ".join(cells) + " |")
    return "\n".join(lines)

