"""The standard on-disk layout of a moment-retrieval data set (the QVHighlights one) and how a sample is loaded.

A data set is a few annotation JSONL files (one (query, video) pair per line) plus feature folders:

* one folder per video feature type (e.g. ``slowfast_features/``, ``clip_features/``), each holding ``{vid}.npz``
  with key ``features`` of shape [clips, dim] (a ``{vid}.npy`` file is accepted too, as some releases ship those);
* one text feature folder holding ``qid{qid}.npz`` with key ``last_hidden_state`` of shape [tokens, dim].

Reading is done here; preparing the arrays for the model (per-type L2 normalisation, cut to the shortest type,
concatenation; QD-DETR's rule) is :class:`td_detr.processing_td_detr.TDDetrProcessor`'s job (its module's
``load_video_features`` / ``load_text_features`` read and prepare in one call). No temporal endpoint feature is
appended; the model adds it.

Annotation checks are strict: a window must satisfy ``0 <= st < ed <= duration`` (a window ending exactly at the
duration, as many Charades-STA windows do, is fine). Anything else is an error that names the file, line and qid,
rather than a silent clip, because a wrong window usually means a wrong ``duration`` or a swapped pair.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from ..errors import TDDetrInputError

VIDEO_FEATURE_KEY = "features"
TEXT_FEATURE_KEY = "last_hidden_state"
# Float slack when comparing a window end with the duration (durations are stored with 2 decimals).
WINDOW_TOLERANCE = 1e-6

PathLike = str | os.PathLike


# ----------------------------------------------------------------------------------------------------------------
# Annotations
# ----------------------------------------------------------------------------------------------------------------


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _fail(path: PathLike, line: int, message: str, qid=None) -> TDDetrInputError:
    where = f"{path}, line {line}" + (f" (qid {qid})" if qid is not None else "")
    return TDDetrInputError(f"{where}: {message}")


def _check_record(record, path: PathLike, line: int) -> dict:
    """Validate one annotation record; returns it with ``duration`` and windows as floats."""
    if not isinstance(record, dict):
        raise _fail(path, line, f"expected a JSON object, got {type(record).__name__}")
    for field in ("qid", "query", "vid", "duration"):
        if field not in record:
            raise _fail(path, line, f"missing field '{field}'", record.get("qid"))
    qid = record["qid"]
    if not _is_int(qid):
        raise _fail(path, line, f"field 'qid' must be an int, got {qid!r}")
    if not isinstance(record["query"], str):
        raise _fail(path, line, "field 'query' must be a string", qid)
    if not isinstance(record["vid"], str) or not record["vid"]:
        raise _fail(path, line, "field 'vid' must be a non-empty string", qid)
    duration = record["duration"]
    if not _is_number(duration) or not math.isfinite(duration) or duration <= 0:
        raise _fail(path, line, f"field 'duration' must be a positive number, got {duration!r}", qid)
    record["duration"] = float(duration)

    windows = record.get("relevant_windows")
    if windows is not None:
        if not isinstance(windows, list):
            raise _fail(path, line, "field 'relevant_windows' must be a list of [start, end] pairs", qid)
        checked = []
        for window in windows:
            if not isinstance(window, (list, tuple)) or len(window) != 2 or not all(map(_is_number, window)):
                raise _fail(path, line, f"relevant window {window!r} is not a [start, end] pair of numbers", qid)
            st, ed = float(window[0]), float(window[1])
            if not (math.isfinite(st) and math.isfinite(ed)) or st >= ed:
                raise _fail(path, line, f"relevant window {window!r} is empty or reversed (start must be < end)", qid)
            if st < 0 or ed > duration + WINDOW_TOLERANCE:
                raise _fail(path, line, f"relevant window {window!r} lies outside the video [0, {duration}]", qid)
            checked.append([st, ed])
        record["relevant_windows"] = checked

    clip_ids = record.get("relevant_clip_ids")
    scores = record.get("saliency_scores")
    if clip_ids is not None:
        if not isinstance(clip_ids, list) or not all(_is_int(c) and c >= 0 for c in clip_ids):
            raise _fail(path, line, "field 'relevant_clip_ids' must be a list of non-negative ints", qid)
    if scores is not None:
        if clip_ids is None or not isinstance(scores, list) or len(scores) != len(clip_ids):
            raise _fail(path, line, "field 'saliency_scores' needs exactly one entry per relevant_clip_ids entry", qid)
        for triple in scores:
            if not isinstance(triple, list) or len(triple) != 3 or not all(_is_int(s) and 0 <= s <= 4 for s in triple):
                raise _fail(path, line, f"saliency score {triple!r} is not a list of 3 ints in 0..4", qid)
    return record


def read_annotations(path: PathLike, clip_length: float | None = None) -> list[dict]:
    """Read and validate an annotation JSONL file (one (query, video) pair per line; blank lines are skipped).

    Raises :class:`TDDetrInputError` naming the file and line (and qid when known) for a file with no annotations,
    text that is not UTF-8, malformed JSON, missing or mistyped fields, windows that are empty or outside
    ``[0, duration]``, saliency scores that do not match the relevant clip ids, relevant clip ids past the end of the
    video (when ``clip_length``, seconds per clip, is given) and duplicate qids.
    """
    path = Path(path)
    if not path.is_file():
        raise TDDetrInputError(f"annotation file not found: {path}")
    records, first_line_of_qid = [], {}
    with path.open("rb") as handle:
        for line_number, raw in enumerate(handle, start=1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as error:
                raise _fail(path, line_number, f"not UTF-8 text (byte 0x{raw[error.start]:02x} at column "
                                               f"{error.start + 1}); save the file as UTF-8 JSON lines") from None
            if not text.strip():
                continue
            try:
                record = json.loads(text)
            except json.JSONDecodeError as error:
                raise _fail(path, line_number, f"invalid JSON ({error.msg} at column {error.colno})") from None
            record = _check_record(record, path, line_number)
            qid = record["qid"]
            if clip_length is not None:
                _check_clip_ids(record, clip_length, path, line_number)
            if qid in first_line_of_qid:
                raise _fail(path, line_number, f"duplicate qid (first seen on line {first_line_of_qid[qid]})", qid)
            first_line_of_qid[qid] = line_number
            records.append(record)
    if not records:
        raise TDDetrInputError(f"{path}: no annotations (the file is empty or has only blank lines)")
    return records


def _check_clip_ids(record: dict, clip_length: float, path: PathLike, line: int) -> None:
    """Every relevant clip must start inside the video: ``clip_id * clip_length < duration``."""
    clip_ids = record.get("relevant_clip_ids") or []
    clips = math.ceil(record["duration"] / clip_length - WINDOW_TOLERANCE)
    past = [clip_id for clip_id in clip_ids if clip_id >= clips]
    if past:
        raise _fail(path, line, f"relevant_clip_ids {past[:5]} lie past the video ({record['duration']} s is {clips} "
                                f"clips of {clip_length} s: ids 0..{clips - 1})", record["qid"])


def write_annotations(path: PathLike, records: Iterable[dict]) -> None:
    """Write records as JSONL, one compact JSON object per line."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")


# ----------------------------------------------------------------------------------------------------------------
# Feature files
# ----------------------------------------------------------------------------------------------------------------


def video_feature_path(folder: PathLike, vid: str) -> Path:
    """The feature file of ``vid`` in ``folder``: ``{vid}.npz``, else ``{vid}.npy`` when only that exists."""
    npz = Path(folder) / f"{vid}.npz"
    if npz.is_file():
        return npz
    npy = Path(folder) / f"{vid}.npy"
    if npy.is_file():
        return npy
    raise TDDetrInputError(f"video features for vid '{vid}' not found: neither {npz} nor {npy} exists")


def text_feature_path(folder: PathLike, qid: int) -> Path:
    """The text feature file of ``qid`` in ``folder`` (``qid{qid}.npz``)."""
    path = Path(folder) / f"qid{qid}.npz"
    if not path.is_file():
        raise TDDetrInputError(f"text features for qid {qid} not found: {path} does not exist")
    return path


def read_feature_array(path: PathLike, key: str) -> np.ndarray:
    """A 2-D float32 array from an ``.npz`` (under ``key``) or ``.npy`` file; rejects NaN/inf and empty arrays."""
    path = Path(path)
    try:
        if path.suffix == ".npy":
            array = np.load(path, allow_pickle=False)
        else:
            with np.load(path, allow_pickle=False) as archive:
                if key not in archive.files:
                    found = ", ".join(archive.files) or "none"
                    raise TDDetrInputError(f"{path}: no array named '{key}' (found: {found})")
                array = archive[key]
    except TDDetrInputError:
        raise
    except Exception as error:  # zip/pickle/format errors all mean the same thing to the user
        raise TDDetrInputError(f"{path}: cannot read feature file ({error})") from None
    if array.ndim != 2 or array.shape[0] == 0 or array.shape[1] == 0:
        raise TDDetrInputError(f"{path}: expected a non-empty 2-D array [rows, dim], got shape {tuple(array.shape)}")
    if not np.issubdtype(array.dtype, np.number):
        raise TDDetrInputError(f"{path}: expected numbers, got dtype {array.dtype}")
    array = array.astype(np.float32, copy=False)
    if not np.isfinite(array).all():
        raise TDDetrInputError(f"{path}: features contain NaN or inf")
    with np.errstate(over="ignore"):
        norms = np.linalg.norm(array, axis=1)
    if not np.isfinite(norms).all():  # the L2 normalisation would turn these rows into zeros
        row = int(np.flatnonzero(~np.isfinite(norms))[0])
        raise TDDetrInputError(f"{path}: features too large: the L2 norm of row {row} overflows float32 (largest "
                               f"|value| {float(np.abs(array).max()):.3g}); rescale them")
    return array


def _cap(max_length: int | None) -> int | None:
    return None if max_length is None or max_length < 0 else max_length


def load_video_feature_types(
    vid: str, video_feature_dirs: Sequence[PathLike], max_length: int | None = None
) -> list[np.ndarray]:
    """Raw float32 features of ``vid``, one array per feature folder, cut to the shortest length and ``max_length``.

    ``max_length`` None (or negative) means no cap.
    """
    if not video_feature_dirs:
        raise TDDetrInputError("no video feature folders given")
    arrays = [read_feature_array(video_feature_path(folder, vid), VIDEO_FEATURE_KEY) for folder in video_feature_dirs]
    length = min(array.shape[0] for array in arrays)
    cap = _cap(max_length)
    if cap is not None:
        length = min(length, cap)
    return [array[:length] for array in arrays]


def write_video_features(folder: PathLike, vid: str, array: np.ndarray) -> Path:
    """Write ``{folder}/{vid}.npz`` with key ``features`` (float32 [clips, dim]); returns the path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{vid}.npz"
    np.savez(path, **{VIDEO_FEATURE_KEY: np.asarray(array, dtype=np.float32)})
    return path


def write_text_features(folder: PathLike, qid: int, array: np.ndarray) -> Path:
    """Write ``{folder}/qid{qid}.npz`` with key ``last_hidden_state`` (float32 [tokens, dim]); returns the path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"qid{qid}.npz"
    np.savez(path, **{TEXT_FEATURE_KEY: np.asarray(array, dtype=np.float32)})
    return path
