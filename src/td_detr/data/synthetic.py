"""A small synthetic moment-retrieval data set in the standard layout; the default data of ``td-detr train``.

The generative story (everything fixed by the seed, see :class:`SyntheticWorld`):

* There are 12 *actions*, each with two query words (e.g. "cooking" / "baking") and one feature signature per video
  feature type. Actions come in confusable pairs whose signatures share a component.
* A video (30-75 clips of 2 s) has a *scene* (a background signature, strong in the 32-d "clip" features), slow
  drift and per-clip noise. Its target action occurs in one window (sometimes two); 0-2 distractor segments of
  other actions occur elsewhere. Inside a segment the action signature is added with a strength that peaks at the
  segment centre; the 3 annotators' saliency scores (0..4) follow that strength plus noise.
* The query is a handful of tokens ("SOT a woman is baking outside EOT"); each token's text feature is the word's
  embedding plus noise. Only the action word tells which segment is meant.
* Moment lengths cover the three QVHighlights buckets: short (<= 10 s), middle (10-30 s) and long (> 30 s).

Preset ``spurious`` plants a spurious correlation between the query and the moment's context: every action has a
*cue* (a fixed "scene" signature, stronger and easier to detect than the action itself). In ``train`` (and
``validation_iid``) the query action's cue fills the 3 clips right before and the 3 clips right after each target
window, so "the stretch between the two cue blocks" is a perfect shortcut. In ``validation`` and ``test`` the two cue
blocks instead bracket a *decoy*: a stretch of plain background as long as the window (at most 20 s), >= 6 clips
away from every target window; a model that learned the shortcut predicts the decoy. ``validation_no_cue`` has no
cue at all. Distractor segments carry no cue. The action signal is weaker than in the default preset but still
learnable, so the cue is the easier signal.

Preset ``spurious_hard`` has the same splits and layout with a shortcut that matters: the action signature is
0.45 / 0.3 strong (spurious: 1.0 / 0.6) and the cue 2.0 / 2.5 (spurious: 1.5 / 2.0), against the same per-clip noise;
its evaluation splits have half as many queries as train (a quarter elsewhere).
The data folder's README scores two oracles on every split (:mod:`.synthetic_oracles`): a cue-only predictor
(100 mAP where the cue brackets the moment, 0 where it brackets the decoy) and an action-only predictor (the same on
every split, well below 100).

Records carry a few extra fields the builder ignores: ``action``, ``bucket`` and (spurious preset)
``cue_placement``, ``cue_windows`` and ``decoy_windows`` (seconds).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import uuid
from pathlib import Path

import numpy as np

from ..errors import TDDetrInputError
from ..output_paths import check_writable_dir
from .layout import write_annotations, write_text_features, write_video_features
from .synthetic_oracles import oracle_scores, oracle_table

GENERATOR_VERSION = 1
CLIP_LENGTH = 2.0
VIDEO_FEATURE_TYPES = (("slowfast_features", 64), ("clip_features", 32))
TEXT_FEATURE_DIR, TEXT_DIM = "clip_text_features", 32
MIN_CLIPS, MAX_CLIPS = 30, 75
CUE_CLIPS = 3  # length of a cue block
FAR_GAP = 6  # clips between a target window and the cue blocks in the shifted eval splits
MAX_DECOY_CLIPS = 10
PRESETS = ("default", "spurious", "spurious_hard")

ACTION_WORDS = (
    ("cooking", "baking"), ("shopping", "browsing"),
    ("dancing", "twirling"), ("singing", "humming"),
    ("running", "jogging"), ("cycling", "biking"),
    ("swimming", "diving"), ("climbing", "scrambling"),
    ("painting", "drawing"), ("reading", "studying"),
    ("talking", "chatting"), ("driving", "steering"),
)  # consecutive pairs are the confusable ones
SUBJECTS = (("a", "woman"), ("a", "man"), ("the", "vlogger"), ("some", "people"), ("a", "person"), ("the", "kid"))
TAILS = ((), ("outside",), ("at", "home"), ("with", "friends"), ("in", "the", "city"), ("near", "the", "window"))
BUCKETS = {"short": (1, 5), "middle": (6, 15), "long": (16, 35)}  # window length in clips (x 2 s)
BUCKET_PROBABILITIES = (0.3, 0.4, 0.3)
MULTI_WINDOW_PROBABILITY = 0.25


@dataclasses.dataclass(frozen=True)
class _Amplitudes:
    action: tuple  # per video feature type
    scene: tuple
    cue: tuple
    noise: tuple
    drift: float = 0.3
    text_noise: float = 0.35


_PRESET_AMPLITUDES = {
    "default": _Amplitudes(action=(1.5, 0.9), scene=(0.6, 1.0), cue=(0.0, 0.0), noise=(1.0, 0.8)),
    "spurious": _Amplitudes(action=(1.0, 0.6), scene=(0.6, 1.0), cue=(1.5, 2.0), noise=(1.0, 0.8)),
    # The shortcut that matters: the action a third as strong as the cue's weaker feature type would make it.
    "spurious_hard": _Amplitudes(action=(0.45, 0.3), scene=(0.6, 1.0), cue=(2.0, 2.5), noise=(1.0, 0.8)),
}

def preset_amplitudes(preset: str) -> _Amplitudes:
    """The signal strengths of a preset (what the oracles of td_detr.data.synthetic_oracles filter for)."""
    return _PRESET_AMPLITUDES[preset]


# split -> (fraction of --size, cue placement); the spurious presets' cue placement per split.
_SPURIOUS_SPLITS = {
    "train": (1.0, "adjacent"),
    "validation": (0.25, "far"),
    "test": (0.25, "far"),
    "validation_iid": (0.25, "adjacent"),
    "validation_no_cue": (0.25, "none"),
}
_SPLITS = {
    "default": {"train": (1.0, None), "validation": (0.25, None), "test": (0.25, None)},
    "spurious": _SPURIOUS_SPLITS,
    # Evaluation splits half the size of train: differences between models are read per query, so more queries.
    "spurious_hard": {split: (1.0 if split == "train" else 0.5, placement)
                      for split, (_, placement) in _SPURIOUS_SPLITS.items()},
}
SPLIT_DESCRIPTIONS = {
    "train": "training split (spurious preset: the cue brackets every moment)",
    "validation": "evaluation split (spurious preset: the cue brackets a decoy far from the moment)",
    "test": "held-out split with ground truth (spurious preset: the cue brackets a decoy far from the moment)",
    "validation_iid": "spurious preset: the cue brackets the moment, as in train (in-distribution)",
    "validation_no_cue": "spurious preset: no cue anywhere",
}


def _unit_rows(array: np.ndarray) -> np.ndarray:
    return array / np.linalg.norm(array, axis=-1, keepdims=True)


def _unit(rng: np.random.Generator, *shape) -> np.ndarray:
    """Random unit vectors along the last axis."""
    return _unit_rows(rng.standard_normal(shape))


@dataclasses.dataclass
class SyntheticWorld:
    """All fixed signatures and embeddings of one seed: what the features are made of."""

    vocabulary: list  # token strings; index = row of word_embeddings
    word_embeddings: np.ndarray  # [V, TEXT_DIM]
    action_signatures: list  # per video feature type: [A, D]
    scene_signatures: list  # per type: [S, D]
    cue_signatures: list  # per type: [A, D]

    @classmethod
    def from_seed(cls, seed: int, num_scenes: int = 6) -> "SyntheticWorld":
        rng = np.random.default_rng([seed, 7919])
        words = ["<sot>", "<eot>"] + sorted({w for pair in SUBJECTS + TAILS for w in pair} | {"is", "are"})
        words += [word for pair in ACTION_WORDS for word in pair]
        embeddings = _unit(rng, len(words), TEXT_DIM)
        # The two words of an action are near-synonyms: mostly a shared action direction.
        for pair in ACTION_WORDS:
            base = _unit(rng, TEXT_DIM)
            for word in pair:
                row = words.index(word)
                embeddings[row] = _unit_rows(base + 0.5 * embeddings[row])
        num_actions = len(ACTION_WORDS)
        actions, scenes, cues = [], [], []
        for _, dim in VIDEO_FEATURE_TYPES:
            own = _unit(rng, num_actions, dim)
            shared = np.repeat(_unit(rng, num_actions // 2, dim), 2, axis=0)  # confusable pairs
            actions.append(_unit_rows(own + 0.5 * shared))
            scenes.append(_unit(rng, num_scenes, dim))
            cues.append(_unit(rng, num_actions, dim))
        return cls(words, embeddings.astype(np.float32), actions, scenes, cues)

    def token_ids(self, tokens) -> np.ndarray:
        return np.array([self.vocabulary.index(token) for token in tokens])


def _strength(length: int) -> np.ndarray:
    """Action strength across a segment's clips: 0.55 at the edges, 1.0 at the centre."""
    u = (np.arange(length) + 0.5) / length
    return 0.55 + 0.45 * np.sin(np.pi * u)


def _free_position(rng, length: int, num_clips: int, occupied: list, gap: int = 1, allowed=None):
    """A random start for a block of ``length`` clips that keeps ``gap`` clips from every occupied block."""
    starts = np.arange(0, num_clips - length + 1)
    ok = np.ones(len(starts), dtype=bool)
    for st, ed in occupied:
        ok &= (starts + length + gap <= st) | (starts >= ed + gap)
    if allowed is not None:
        ok &= allowed(starts)
    candidates = starts[ok]
    return None if len(candidates) == 0 else int(rng.choice(candidates))


def _plan_video(rng, action: int, placement, bucket: str):
    """Clip-index layout of one video: target windows, distractor segments, cue blocks and decoys; None to retry.

    Spurious preset: each target window is bracketed by two cue blocks ("adjacent"), or the two cue blocks bracket
    a *decoy* stretch of background of the window's length, at least FAR_GAP clips from every target window ("far").
    """
    num_clips = int(rng.integers(MIN_CLIPS, MAX_CLIPS + 1))
    lo, hi = BUCKETS[bucket]
    num_windows = 2 if bucket != "long" and rng.random() < MULTI_WINDOW_PROBABILITY else 1
    margin = 0 if placement is None else CUE_CLIPS  # room for the cue blocks around every target window
    gap = 2 if placement is None else 2 * CUE_CLIPS + 1
    occupied, windows = [], []
    for _ in range(num_windows):
        length = int(rng.integers(lo, min(hi, num_clips - 2 * CUE_CLIPS - 2) + 1))
        inside = lambda starts, n=length: (starts >= margin) & (starts + n <= num_clips - margin)  # noqa: E731
        start = _free_position(rng, length, num_clips, occupied, gap=gap, allowed=inside)
        if start is None:
            return None
        windows.append((start, start + length))
        occupied.append(windows[-1])
    others = [a for a in range(len(ACTION_WORDS)) if a != action]
    segments = [(w, action) for w in windows]
    for _ in range(int(rng.integers(0, 3))):
        length = int(rng.integers(2, 11))
        start = _free_position(rng, length, num_clips, occupied, gap=gap)
        if start is not None:
            segments.append(((start, start + length), int(rng.choice(others))))
            occupied.append(segments[-1][0])
    cues, decoys = [], []
    if placement == "adjacent":
        for st, ed in windows:
            cues += [(st - CUE_CLIPS, st), (ed, ed + CUE_CLIPS)]
    elif placement == "far":
        for st, ed in windows:
            block = min(ed - st, MAX_DECOY_CLIPS) + 2 * CUE_CLIPS  # capped so long moments still leave room

            def far(starts, block=block):
                ok = np.ones(len(starts), dtype=bool)
                for w_st, w_ed in windows:
                    ok &= (starts + block + FAR_GAP <= w_st) | (starts >= w_ed + FAR_GAP)
                return ok

            start = _free_position(rng, block, num_clips, occupied, gap=1, allowed=far)
            if start is None:
                return None
            decoys.append((start + CUE_CLIPS, start + block - CUE_CLIPS))
            cues += [(start, start + CUE_CLIPS), (start + block - CUE_CLIPS, start + block)]
            occupied.append((start, start + block))
    return num_clips, bucket, sorted(windows), segments, sorted(cues), sorted(decoys)


def _video_features(rng, world: SyntheticWorld, amps: _Amplitudes, num_clips, scene, segments, cues, action):
    """One array per video feature type; ~20% of videos get one extra trailing row in the 32-d type."""
    strength = np.zeros((num_clips, len(ACTION_WORDS)))
    for (st, ed), segment_action in segments:
        strength[st:ed, segment_action] += _strength(ed - st)
    cue_mask = np.zeros((num_clips, len(ACTION_WORDS)))
    for st, ed in cues:
        cue_mask[st:ed, action] = 1.0  # the cue of the query's action
    extra_row = rng.random() < 0.2
    arrays = []
    for index, (_, dim) in enumerate(VIDEO_FEATURE_TYPES):
        rows = num_clips + (1 if extra_row and index == 1 else 0)
        drift = np.cumsum(rng.standard_normal((rows + 4, dim)), axis=0)  # slowly varying background
        drift = (drift[4:] - drift[:-4]) / np.sqrt(4 * dim)
        x = amps.scene[index] * world.scene_signatures[index][scene] + amps.drift * drift
        x += amps.noise[index] * rng.standard_normal((rows, dim)) / np.sqrt(dim)
        x[:num_clips] += amps.action[index] * strength @ world.action_signatures[index]
        x[:num_clips] += amps.cue[index] * cue_mask @ world.cue_signatures[index]
        arrays.append(x.astype(np.float32))
    return arrays


def _query(rng, world: SyntheticWorld, amps: _Amplitudes, action: int):
    subject = SUBJECTS[rng.integers(len(SUBJECTS))]
    verb = "are" if subject[0] == "some" else "is"
    word = ACTION_WORDS[action][rng.integers(2)]
    tokens = [*subject, verb, word, *TAILS[rng.integers(len(TAILS))]]
    ids = world.token_ids(["<sot>", *tokens, "<eot>"])
    noise = rng.standard_normal((len(ids), TEXT_DIM)) / np.sqrt(TEXT_DIM)
    features = world.word_embeddings[ids] + amps.text_noise * noise
    return " ".join(tokens), features.astype(np.float32)


def _saliency(rng, windows) -> tuple[list, list]:
    """Relevant clip ids (union of the windows) and 3 noisy annotator scores each, highest at window centres."""
    clip_ids, scores = [], []
    for st, ed in windows:
        mean = 1.0 + 3.0 * (_strength(ed - st) - 0.55) / 0.45  # 1 at the edges .. 4 at the centre
        noisy = np.clip(np.rint(mean[:, None] + 0.8 * rng.standard_normal((ed - st, 3))), 0, 4).astype(int)
        clip_ids += list(range(st, ed))
        scores += noisy.tolist()
    return clip_ids, scores


def generate_split(world, amps, rng, split: str, count: int, placement, first_qid: int, out_dir: Path) -> list:
    """Generate ``count`` (query, video) pairs, write their feature files and return the annotation records."""
    records = []
    for index in range(count):
        action = int(rng.integers(len(ACTION_WORDS)))
        bucket = list(BUCKETS)[rng.choice(len(BUCKETS), p=BUCKET_PROBABILITIES)]
        plan = None
        while plan is None:  # a layout that does not fit is redrawn in the same bucket, so buckets stay balanced
            plan = _plan_video(rng, action, placement, bucket)
        num_clips, bucket, windows, segments, cues, decoys = plan
        vid, qid = f"synth_{split}_{index:05d}", first_qid + index
        scene = int(rng.integers(len(world.scene_signatures[0])))
        arrays = _video_features(rng, world, amps, num_clips, scene, segments, cues, action)
        for (folder, _), array in zip(VIDEO_FEATURE_TYPES, arrays):
            write_video_features(out_dir / folder, vid, array)
        query, text = _query(rng, world, amps, action)
        write_text_features(out_dir / TEXT_FEATURE_DIR, qid, text)
        clip_ids, scores = _saliency(rng, windows)
        record = {
            "qid": qid,
            "query": query,
            "vid": vid,
            "duration": num_clips * CLIP_LENGTH,
            "relevant_windows": [[st * CLIP_LENGTH, ed * CLIP_LENGTH] for st, ed in windows],
            "relevant_clip_ids": clip_ids,
            "saliency_scores": scores,
            "action": ACTION_WORDS[action][0],
            "bucket": bucket,
        }
        if placement is not None:
            record["cue_placement"] = placement
            record["cue_windows"] = [[st * CLIP_LENGTH, ed * CLIP_LENGTH] for st, ed in cues]
            record["decoy_windows"] = [[st * CLIP_LENGTH, ed * CLIP_LENGTH] for st, ed in decoys]
        records.append(record)
    return records


def _layout_info(seed: int, size: int, preset: str, counts: dict) -> dict:
    return {
        "name": "td-detr synthetic moment retrieval",
        "generator": "td_detr.data.synthetic",
        "generator_version": GENERATOR_VERSION,
        "preset": preset,
        "seed": seed,
        "size": size,
        "clip_length": CLIP_LENGTH,
        "max_video_length": MAX_CLIPS,
        "max_query_length": 32,
        "with_saliency": True,
        "video_feature_dirs": [folder for folder, _ in VIDEO_FEATURE_TYPES],
        "video_feature_dims": [dim for _, dim in VIDEO_FEATURE_TYPES],
        "text_feature_dir": TEXT_FEATURE_DIR,
        "text_feature_dim": TEXT_DIM,
        "splits": {split: f"{split}.jsonl" for split in counts},
        "split_sizes": counts,
        "split_descriptions": {split: SPLIT_DESCRIPTIONS[split] for split in counts},
        "actions": [pair[0] for pair in ACTION_WORDS],
    }


def _readme(info: dict, oracles: str | None = None) -> str:
    video = ", ".join(f"{d}/ ({n}-d)" for d, n in zip(info["video_feature_dirs"], info["video_feature_dims"]))
    lines = [
        f"# {info['name']} (preset '{info['preset']}', seed {info['seed']})",
        "",
        "Written by `td-detr make-synthetic`; the layout is the standard QVHighlights one, so",
        "`load_moment_retrieval_dataset(\"<this folder>\")` (builder config `layout`) reads it with the help of",
        "dataset_info.json.",
        "",
        f"- clip length: {info['clip_length']} s per feature row; videos of {MIN_CLIPS}-{MAX_CLIPS} clips",
        f"- video features: {video} with `{{vid}}.npz` (key `features`)",
        f"- text features: {info['text_feature_dir']}/ ({info['text_feature_dim']}-d) with `qid{{qid}}.npz`"
        " (key `last_hidden_state`)",
        "- splits (all with ground truth and saliency scores):",
    ]
    for split, file in info["splits"].items():
        count, description = info["split_sizes"][split], info["split_descriptions"][split]
        lines.append(f"  - `{split}`: {file}, {count} queries: {description}")
    if oracles:
        lines += ["", "What each split tests, scored with the project's metrics (td_detr.data.synthetic_oracles): the",
                  "*cue-only* oracle predicts the stretch between two blocks of the query action's cue and never reads",
                  "the action; the *action-only* oracle predicts where the action's signature is and never reads the",
                  "cue. A model that learned the shortcut scores like the first, one that learned the task like the",
                  "second.", "", oracles]
    lines += ["", "See the docstring of td_detr.data.synthetic for the generative story.", ""]
    return "\n".join(lines)


def write_synthetic_dataset(
    out_dir, seed: int = 0, size: int = 600, preset: str = "default", overwrite: bool = False
) -> Path:
    """Write the synthetic data set to ``out_dir`` (deterministic given seed, size and preset); returns the folder.

    Train has ``size`` queries; every other split ``size // 4`` (``spurious_hard``: ``size // 2``; at least 1). The folder is written in a sibling
    temporary folder and renamed into place, so it is never seen half-written. An existing non-empty ``out_dir``
    is an error unless ``overwrite`` is set and it holds a data set this function wrote.
    """
    if preset not in PRESETS:
        raise TDDetrInputError(f"unknown synthetic preset '{preset}'; choose from {', '.join(PRESETS)}")
    if size < 1:
        raise TDDetrInputError(f"--size must be at least 1, got {size}")
    out_dir = Path(out_dir).absolute()
    check_writable_dir(out_dir.parent, "the folder of OUT")  # written as a sibling, then renamed into place
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        if not overwrite:
            raise TDDetrInputError(f"{out_dir} exists and is not empty (pass overwrite / --overwrite to replace it)")
        if not is_synthetic_dataset(out_dir):
            raise TDDetrInputError(f"refusing to overwrite {out_dir}: not a synthetic data set written by td-detr")
        foreign = _foreign_entries(out_dir, _read_info(out_dir))
        if foreign:
            raise TDDetrInputError(
                f"refusing to overwrite {out_dir}: it also holds what td-detr make-synthetic did not write "
                f"({', '.join(foreign[:5])}{', ...' if len(foreign) > 5 else ''}); move that out or choose another folder"
            )
    world = SyntheticWorld.from_seed(seed)
    amps = _PRESET_AMPLITUDES[preset]
    tmp = out_dir.parent / f".{out_dir.name}.partial-{uuid.uuid4().hex[:8]}"
    tmp.mkdir(parents=True)
    try:
        counts, qid = {}, 0
        for split_index, (split, (fraction, placement)) in enumerate(_SPLITS[preset].items()):
            count = size if fraction == 1.0 else max(1, int(size * fraction))
            rng = np.random.default_rng([seed, split_index])
            records = generate_split(world, amps, rng, split, count, placement, qid, tmp)
            write_annotations(tmp / f"{split}.jsonl", records)
            counts[split], qid = count, qid + count
        info = _layout_info(seed, size, preset, counts)
        (tmp / "dataset_info.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
        oracles = oracle_table(oracle_scores(tmp, world, amps)) if preset != "default" else None
        (tmp / "README.md").write_text(_readme(info, oracles), encoding="utf-8")
        if out_dir.exists():
            shutil.rmtree(out_dir) if out_dir.is_dir() else out_dir.unlink()
        os.replace(tmp, out_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return out_dir


def _read_info(folder: Path) -> dict | None:
    try:
        return json.loads((folder / "dataset_info.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _foreign_entries(folder: Path, info: dict) -> list[str]:
    """Entries of a synthetic data set folder that the generator did not write (e.g. a training run saved inside)."""
    splits = info.get("splits") if isinstance(info.get("splits"), dict) else {}
    feature_dirs = [*info.get("video_feature_dirs", []), info.get("text_feature_dir")]
    generated = {"dataset_info.json", "README.md", *map(str, splits.values()), *map(str, feature_dirs)}
    foreign = sorted(entry.name + ("/" if entry.is_dir() else "") for entry in folder.iterdir()
                     if entry.name not in generated)
    for name in feature_dirs:
        if name and (folder / name).is_dir():
            foreign += sorted(f"{name}/{entry.name}" for entry in (folder / name).iterdir()
                              if not (entry.is_file() and entry.suffix == ".npz"))
    return foreign


def is_synthetic_dataset(folder) -> bool:
    """Whether ``folder`` holds a data set written by :func:`write_synthetic_dataset`."""
    info = _read_info(Path(folder))
    return isinstance(info, dict) and info.get("generator") == "td_detr.data.synthetic"


def ensure_synthetic_dataset(out_dir, seed: int = 0, size: int = 600, preset: str = "default") -> Path:
    """Return ``out_dir`` holding the synthetic data set for these settings, generating it only when needed."""
    out_dir = Path(out_dir).absolute()
    info = _read_info(out_dir) if out_dir.is_dir() else None
    wanted = {"generator": "td_detr.data.synthetic", "generator_version": GENERATOR_VERSION}
    wanted.update(seed=seed, size=size, preset=preset)
    if info is not None and all(info.get(key) == value for key, value in wanted.items()):
        return out_dir
    return write_synthetic_dataset(out_dir, seed=seed, size=size, preset=preset, overwrite=True)
