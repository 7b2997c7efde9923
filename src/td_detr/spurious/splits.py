"""Data side of the spurious-correlation evaluation (paper Fig. 1, §4, S4.2).

Two ways to change an evaluation set so that a model relying on the moment's *context* rather than the moment fails:

* **masked-moment split**: the clips of every ground-truth window (widened by ``margin`` seconds on each side) are
  replaced, by default with uniform noise in each feature type's [min, max] over that video (the official code's
  unreleased variant, which used a hard-coded 2-s clip; here the data set's ``clip_length``), or with zeros, or with
  clips of another video. The original windows stay the targets: a model that still finds them was looking at the
  context. (Spurious R@1 / mAP, lower is better.)
* **dynamic-context split** (S4.2): every video keeps its moment block (first to last ground-truth clip, as the
  synthesizer defines it) and all its other clips are replaced by clips of a *donor* video, taken in temporal order;
  the video keeps its length and the moment is moved to a random position (``placement="random"``, windows
  re-mapped) or stays where it was (``"keep"``). Ordinary metrics. The donor is the most similar video by Eq. 1
  (``pairing="similarity"``) or a uniformly random one (``"random"``) among the videos cut from *another source
  video* (:func:`source_video_id`): QVHighlights vids ``<YouTube id>_<start>_<end>`` are 2.5-min segments of 474
  YouTube videos in val, and a neighbouring segment of the same YouTube video is neither a new context nor free of
  the query's content; other data sets (Charades: the video id) use the vid itself.

Both work per feature type on *raw* features (the same clip indices for every type), so the per-type L2
normalisation applied on load stays right, and both are deterministic: each query draws from a generator seeded
with (``seed``, qid). :func:`write_masked_split` / :func:`write_dynamic_context_split` write a split in the standard
layout (annotations JSONL, one folder per video feature type, the text features linked or copied) so any tool can
read it. Every query gets its own video, named ``{vid}__q{qid}`` (queries of one video have different moments);
the original id is kept in ``source_vid``.
"""

from __future__ import annotations

import functools
import math
import os
import re
import shutil
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..data.synthesis import clip_unit_vectors, moment_blocks, most_similar_by_eq1, remap_moment
from ..errors import TDDetrInputError

MASK_FILLS = ("noise", "zeros", "other")
CONTEXT_PAIRINGS = ("similarity", "random")
PLACEMENTS = ("random", "keep")
TEXT_FILE_MODES = ("link", "copy", "symlink")
# QVHighlights: "<YouTube id>_<start s>_<end s>", e.g. "RoripwjYFp8_360.0_510.0" (YouTube ids may contain "_").
_SEGMENT_VID = re.compile(r"^(?P<source>.+)_\d+(?:\.\d+)?_\d+(?:\.\d+)?$")


def source_video_id(vid: str) -> str:
    """The source video a vid was cut from: the YouTube id of a QVHighlights segment vid
    (``<id>_<start>_<end>``), otherwise the vid itself (Charades-STA, the synthetic and custom data)."""
    match = _SEGMENT_VID.match(str(vid))
    return match.group("source") if match else str(vid)


def _record_rng(seed: int, qid) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(str(qid).encode())])


def ordered_clip_sample(available: int, count: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` clip indices of a video with ``available`` clips, in temporal order: a random subset without
    replacement when there are enough clips, otherwise every clip once plus random repeats (adjacent copies)."""
    if count <= available:
        return np.sort(rng.choice(available, size=count, replace=False))
    extra = rng.choice(available, size=count - available, replace=True)
    return np.sort(np.concatenate([np.arange(available), extra]))


# ----------------------------------------------------------------------------------------------------------------
# Masked moments
# ----------------------------------------------------------------------------------------------------------------


def moment_mask(windows, clip_ids, length: int, clip_length: float, margin: float = 3.0) -> np.ndarray:
    """Clips to hide, bool [length]: for every window [st, ed] the clips ``floor(max(0, st − margin) / c)`` up to
    (excluding) ``floor((ed + margin) / c)`` as the official variant, but never less than the clips the window touches
    (``ceil(ed / c)``), plus every relevant clip id; gaps between windows are left alone."""
    mask = np.zeros(length, dtype=bool)
    for st_, ed in np.asarray(windows, dtype=np.float64).reshape(-1, 2):
        first = math.floor(max(0.0, st_ - margin) / clip_length + 1e-9)
        last = max(math.ceil(ed / clip_length - 1e-6), math.floor((ed + margin) / clip_length + 1e-9))
        mask[max(first, 0) : min(last, length)] = True
    ids = np.asarray(clip_ids, dtype=np.int64).reshape(-1)
    mask[ids[ids < length]] = True
    return mask


def mask_moment(
    feature_types: Sequence[np.ndarray],
    windows,
    clip_ids,
    clip_length: float,
    rng: np.random.Generator,
    margin: float = 3.0,
    fill: str = "noise",
    replacement_types: Sequence[np.ndarray] | None = None,
) -> tuple[list[np.ndarray], np.ndarray]:
    """Hide a video's moment; returns the new raw feature arrays (one per type, same shapes) and the hidden-clip mask.

    ``fill``: ``"noise"`` (uniform in [min, max] of that type's array, drawn per element), ``"zeros"``, or ``"other"``
    (clips of ``replacement_types``, another video's raw arrays, taken in temporal order).
    """
    if fill not in MASK_FILLS:
        raise TDDetrInputError(f"mask fill must be one of {MASK_FILLS}, got {fill!r}")
    length = min(len(x) for x in feature_types)
    mask = moment_mask(windows, clip_ids, length, clip_length, margin)
    hidden = int(mask.sum())
    if fill == "other":
        if replacement_types is None:
            raise TDDetrInputError("mask fill 'other' needs the replacement video's features")
        picks = ordered_clip_sample(min(len(x) for x in replacement_types), hidden, rng)
    masked = []
    for t, array in enumerate(feature_types):
        array = np.array(array[:length], dtype=np.float32)
        if fill == "noise":
            array[mask] = rng.uniform(array.min(), array.max(), size=(hidden, array.shape[1]))
        elif fill == "zeros":
            array[mask] = 0.0
        else:
            array[mask] = replacement_types[t][picks]
        masked.append(array)
    return masked, mask


# ----------------------------------------------------------------------------------------------------------------
# Dynamic context
# ----------------------------------------------------------------------------------------------------------------


def dynamic_context(
    own_types: Sequence[np.ndarray],
    context_types: Sequence[np.ndarray],
    windows,
    clip_ids,
    clip_length: float,
    rng: np.random.Generator,
    placement: str = "random",
) -> tuple[list[np.ndarray], np.ndarray, np.ndarray, int]:
    """Keep a video's moment block and replace all its other clips by clips of another video.

    Returns the new raw arrays (one per type, same length as the original), the re-mapped windows (seconds) and clip
    ids, and the shift of the moment in clips. Windows are first cut to the video ([0, L·clip_length]) and clip ids
    beyond it dropped (the caller drops their saliency scores: ``clip_ids < L``).
    """
    if placement not in PLACEMENTS:
        raise TDDetrInputError(f"placement must be one of {PLACEMENTS}, got {placement!r}")
    length = min(len(x) for x in own_types)
    windows = np.asarray(windows, dtype=np.float64).reshape(-1, 2)
    windows = windows[windows[:, 0] < length * clip_length]
    windows[:, 1] = np.minimum(windows[:, 1], length * clip_length)
    clip_ids = np.asarray(clip_ids, dtype=np.int64).reshape(-1)
    clip_ids = clip_ids[clip_ids < length]
    if len(windows) == 0:
        raise TDDetrInputError("dynamic context needs a window inside the video")
    (start,), (end,) = moment_blocks([windows], [clip_ids], np.array([length]), clip_length)
    context = length - (end - start)
    new_start = int(rng.integers(0, context + 1)) if placement == "random" else int(start)
    picks = ordered_clip_sample(min(len(x) for x in context_types), context, rng)
    composed = [
        np.concatenate([other[picks[:new_start]], own[start:end], other[picks[new_start:]]]).astype(np.float32)
        for own, other in zip(own_types, context_types)
    ]
    shift = new_start - int(start)
    new_windows, new_ids = remap_moment(windows, clip_ids, shift, clip_length)
    return composed, new_windows, new_ids, shift


def _similarity_units(feature_types: Sequence[np.ndarray]) -> np.ndarray:
    """Clip unit vectors of the model's input (the raw types prepared as the processor does for the model)."""
    from ..processing_td_detr import TDDetrProcessor

    return clip_unit_vectors(TDDetrProcessor().prepare_video(feature_types))


def choose_context_videos(
    vids: Sequence[str], load_types, pairing: str = "similarity", seed: int = 0, shortlist_cap: int = 64
) -> dict[str, str]:
    """The donor video of each distinct video: the most similar one by Eq. 1, or a uniformly random one, among the
    videos of *another source video* (:func:`source_video_id`).

    ``load_types(vid)`` returns the raw feature arrays. Similarity uses :func:`.synthesis.most_similar_by_eq1`: one
    pass for the per-video sums, then exact scores for the few candidates that can still win.
    """
    if pairing not in CONTEXT_PAIRINGS:
        raise TDDetrInputError(f"context pairing must be one of {CONTEXT_PAIRINGS}, got {pairing!r}")
    vids = list(dict.fromkeys(vids))
    sources = np.array([source_video_id(v) for v in vids], dtype=object)
    valid = sources[:, None] != sources[None, :]
    lonely = [vid for vid, ok in zip(vids, valid.any(axis=1)) if not ok]
    if lonely:
        raise TDDetrInputError(
            f"a dynamic-context split needs videos from at least two source videos; {lonely[0]} has no donor"
        )
    if pairing == "random":
        rng = np.random.default_rng(seed)
        keys = np.where(valid, rng.random(valid.shape), -1.0)
        return {vid: vids[p] for vid, p in zip(vids, keys.argmax(axis=1))}
    units = functools.lru_cache(maxsize=64)(lambda i: _similarity_units(load_types(vids[i])))
    sums, lengths = [], []
    for i in range(len(vids)):
        u = units(i)
        sums.append(u.sum(axis=0, dtype=np.float64))
        lengths.append(len(u))

    def same_position_dot(j: int, l: int) -> float:
        a, b = units(j), units(l)
        n = min(len(a), len(b))
        return float(np.einsum("pd,pd->", a[:n], b[:n], dtype=np.float64))

    partners = most_similar_by_eq1(
        np.stack(sums), np.array(lengths), same_position_dot, valid=valid, shortlist_cap=shortlist_cap
    )
    return {vid: vids[p] for vid, p in zip(vids, partners)}


# ----------------------------------------------------------------------------------------------------------------
# Writers (standard layout)
# ----------------------------------------------------------------------------------------------------------------


def _prepare(annotation_path, video_feature_dirs, text_feature_dir, output_dir, text_files):
    from ..data.layout import read_annotations  # lazy: keeps this module importable on its own

    if text_files not in TEXT_FILE_MODES:
        raise TDDetrInputError(f"text_files must be one of {TEXT_FILE_MODES}, got {text_files!r}")
    records = read_annotations(annotation_path)
    for record in records:
        if not record.get("relevant_windows"):
            raise TDDetrInputError(
                f"{annotation_path}: qid {record['qid']} has no relevant_windows; a spurious split needs them"
            )
    video_feature_dirs = [Path(d) for d in video_feature_dirs]
    names = [d.name for d in video_feature_dirs] + [Path(text_feature_dir).name]
    if len(set(names)) != len(names):
        raise TDDetrInputError(f"feature folders must have distinct names to share one output folder, got {names}")
    output_dir = Path(output_dir)
    sources = {Path(annotation_path).parent.resolve(), *(d.parent.resolve() for d in video_feature_dirs)}
    if output_dir.resolve() in sources:
        raise TDDetrInputError(f"output folder {output_dir} must differ from the source layout's folder")
    output_dir.mkdir(parents=True, exist_ok=True)
    return records, video_feature_dirs, output_dir


def _place_text_features(qids, text_feature_dir, output_dir: Path, mode: str) -> None:
    source_dir = Path(text_feature_dir)
    target_dir = output_dir / source_dir.name
    target_dir.mkdir(parents=True, exist_ok=True)
    for qid in qids:
        source, target = source_dir / f"qid{qid}.npz", target_dir / f"qid{qid}.npz"
        if not source.is_file():
            raise TDDetrInputError(f"text features for qid {qid} not found: {source} does not exist")
        if target.exists() or target.is_symlink():
            target.unlink()
        if mode == "symlink":
            target.symlink_to(source.resolve())
            continue
        if mode == "link":
            try:
                os.link(source, target)
                continue
            except OSError:  # another file system, or no hard links: copy instead
                pass
        shutil.copyfile(source, target)


def _write_split(records, video_feature_dirs, text_feature_dir, output_dir, annotation_path, text_files, make):
    from ..data.layout import write_annotations, write_video_features

    out_records = []
    for record in records:
        types, updates = make(record)
        new_vid = f"{record['vid']}__q{record['qid']}"
        for folder, array in zip(video_feature_dirs, types):
            write_video_features(output_dir / folder.name, new_vid, array)
        out_records.append({**record, "vid": new_vid, "source_vid": record["vid"], **updates})
    target = output_dir / Path(annotation_path).name
    write_annotations(target, out_records)
    _place_text_features([r["qid"] for r in records], text_feature_dir, output_dir, text_files)
    return target


def write_masked_split(
    annotation_path,
    video_feature_dirs: Sequence,
    text_feature_dir,
    output_dir,
    *,
    clip_length: float = 2.0,
    margin: float = 3.0,
    fill: str = "noise",
    seed: int = 0,
    text_files: str = "link",
) -> Path:
    """Write the masked-moment split of a layout to ``output_dir``; returns the new annotation file.

    Windows, clip ids and saliency are unchanged (they are the targets); each record gains ``source_vid`` and
    ``masked_clip_ids``. ``fill="other"`` takes the replacement clips from a random other video of the split.
    ``text_files``: ``"link"`` (hard links, copies where that fails), ``"copy"`` or ``"symlink"``.
    """
    from ..data.layout import load_video_feature_types

    records, video_feature_dirs, output_dir = _prepare(
        annotation_path, video_feature_dirs, text_feature_dir, output_dir, text_files
    )
    load = functools.lru_cache(maxsize=8)(lambda vid: tuple(load_video_feature_types(vid, video_feature_dirs)))
    vids = list(dict.fromkeys(r["vid"] for r in records))

    def make(record):
        rng = _record_rng(seed, record["qid"])
        replacement = None
        if fill == "other":
            others = [v for v in vids if v != record["vid"]]
            if not others:
                raise TDDetrInputError("mask fill 'other' needs at least two different videos")
            replacement = load(others[int(rng.integers(len(others)))])
        types, mask = mask_moment(
            load(record["vid"]), record["relevant_windows"], record.get("relevant_clip_ids", []), clip_length, rng,
            margin=margin, fill=fill, replacement_types=replacement,
        )
        return types, {"masked_clip_ids": np.flatnonzero(mask).tolist()}

    return _write_split(records, video_feature_dirs, text_feature_dir, output_dir, annotation_path, text_files, make)


def write_dynamic_context_split(
    annotation_path,
    video_feature_dirs: Sequence,
    text_feature_dir,
    output_dir,
    *,
    clip_length: float = 2.0,
    pairing: str = "similarity",
    placement: str = "random",
    seed: int = 0,
    text_files: str = "link",
) -> Path:
    """Write the dynamic-context split (paper S4.2) of a layout to ``output_dir``; returns the new annotation file.

    Every query of a video gets the same context video (``pairing``); windows and clip ids are re-mapped (saliency
    scores follow their clip ids), the length is unchanged and so is ``duration`` unless a moved window now ends past it
    (possible when L·clip_length > duration; it then becomes that end), and each record gains ``source_vid``,
    ``context_vid``, ``source_relevant_windows`` and ``moment_shift`` (seconds).
    """
    from ..data.layout import load_video_feature_types

    records, video_feature_dirs, output_dir = _prepare(
        annotation_path, video_feature_dirs, text_feature_dir, output_dir, text_files
    )
    load = functools.lru_cache(maxsize=8)(lambda vid: tuple(load_video_feature_types(vid, video_feature_dirs)))
    contexts = choose_context_videos([r["vid"] for r in records], load, pairing, seed)

    def make(record):
        clip_ids = record.get("relevant_clip_ids", [])
        types, windows, ids, shift = dynamic_context(
            load(record["vid"]), load(contexts[record["vid"]]), record["relevant_windows"], clip_ids, clip_length,
            _record_rng(seed, record["qid"]), placement,
        )
        updates = {
            "relevant_windows": windows.tolist(),
            # the moment may now end in the last clip, past a duration shorter than L·clip_length
            "duration": max(float(record["duration"]), float(windows[:, 1].max())),
            "context_vid": contexts[record["vid"]],
            "source_relevant_windows": record["relevant_windows"],
            "moment_shift": shift * clip_length,
        }
        if clip_ids:
            inside = np.asarray(clip_ids) < len(types[0])
            updates["relevant_clip_ids"] = ids.tolist()
            updates["saliency_scores"] = [s for s, keep in zip(record.get("saliency_scores", []), inside) if keep]
        return types, updates

    return _write_split(records, video_feature_dirs, text_feature_dir, output_dir, annotation_path, text_files, make)
