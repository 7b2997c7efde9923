"""Reading, validating and packing submissions and ground truth in the QVHighlights JSONL format.

A submission line: ``{"qid": int, "pred_relevant_windows": [[start_s, end_s, score], ...],
"pred_saliency_scores": [float, ...]}`` (either prediction key may be absent, but then on every line).
A ground-truth line: ``{"qid": int, "duration": float, "relevant_windows": [[start_s, end_s], ...],
"relevant_clip_ids": [int, ...], "saliency_scores": [[a1, a2, a3], ...]}`` (Charades-style data has no saliency).

Validation collects every problem first and raises ONE :class:`~td_detr.errors.TDDetrInputError` listing the
offending qids (or records / lines), so a bad file is fixed in one round trip. Packing turns the ragged records into
zero-padded numpy arrays plus per-row counts, which is what the vectorised metrics consume.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from itertools import chain
from pathlib import Path

import numpy as np

from ..errors import TDDetrInputError

# How many offending items one problem line lists before it summarises the rest.
MAX_LISTED = 20


class InputProblems:
    """Collects validation problems (kind -> offending items) so that they are reported together."""

    def __init__(self) -> None:
        self.by_kind: dict[str, list] = {}

    def add(self, kind: str, items) -> None:
        items = list(items)
        if items:
            self.by_kind.setdefault(kind, []).extend(items)

    def __bool__(self) -> bool:
        return bool(self.by_kind)

    def message(self, header: str = "cannot score the submission") -> str:
        lines = [f"{header}:"]
        for kind, items in self.by_kind.items():
            shown = ", ".join(str(item) for item in items[:MAX_LISTED])
            if len(items) > MAX_LISTED:
                shown += f", ... ({len(items) - MAX_LISTED} more)"
            lines.append(f"  - {kind} [{len(items)}]: {shown}")
        return "\n".join(lines)

    def raise_if_any(self, header: str = "cannot score the submission") -> None:
        if self:
            raise TDDetrInputError(self.message(header))


def read_jsonl(path: str | Path, *, what: str = "JSONL") -> list[dict]:
    """Read one JSON object per line (blank lines skipped).

    Every malformed line is reported in a single :class:`TDDetrInputError` naming the file and line numbers.
    """
    path = Path(path)
    if not path.is_file():
        raise TDDetrInputError(f"{what} file not found: {path}")
    records, bad_lines = [], []
    try:
        with path.open(encoding="utf-8") as handle:
            for line_number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as error:
                    bad_lines.append(f"line {line_number} ({error.msg} at column {error.colno})")
                    continue
                if not isinstance(record, dict):
                    bad_lines.append(f"line {line_number} (expected a JSON object, got {type(record).__name__})")
                    continue
                records.append(record)
    except UnicodeDecodeError as error:
        raise TDDetrInputError(f"{what} file {path} is not UTF-8 text: {error}") from None
    if bad_lines:
        problems = InputProblems()
        problems.add("malformed JSON lines", bad_lines)
        problems.raise_if_any(f"{what} file {path} is not valid JSONL")
    if not records:
        raise TDDetrInputError(f"{what} file {path} holds no records")
    return records


def write_jsonl(path: str | Path, records: list[dict]) -> None:
    """One JSON object per line (the submission format :func:`read_jsonl` reads)."""
    with open(path, "w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record) + "\n")


@dataclass
class PackedSubmission:
    """A submission as padded arrays; rows follow the submission order."""

    qids: np.ndarray  # (Q,) int64
    windows: np.ndarray | None  # (Q, K, 3) float64 [start, end, score], the first K submitted windows, 0-padded
    num_windows: np.ndarray | None  # (Q,) windows kept per row (<= K)
    saliency: np.ndarray | None  # (Q, P) float64, 0-padded
    num_saliency: np.ndarray | None  # (Q,)

    def take(self, rows: np.ndarray) -> "PackedSubmission":
        return PackedSubmission(*(None if a is None else a[rows] for a in self.__dict__.values()))


@dataclass
class PackedGroundTruth:
    """Ground truth as padded arrays; rows follow the annotation order."""

    qids: np.ndarray  # (Q,) int64
    windows: np.ndarray | None  # (Q, G, 2) float64 [start, end], 0-padded
    num_windows: np.ndarray | None  # (Q,)
    saliency: np.ndarray | None  # (Q, N, 3) int64 annotator scores per clip, 0 outside relevant clips and padding
    num_clips: np.ndarray | None  # (Q,) int(duration / clip_length)

    def take(self, rows: np.ndarray) -> "PackedGroundTruth":
        return PackedGroundTruth(*(None if a is None else a[rows] for a in self.__dict__.values()))


def _label(record_index: int, qid) -> str:
    return str(qid) if _is_int(qid) else f"record {record_index + 1}"


def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def require_records(records, source: str) -> None:
    """Records must be a non-empty list of dicts (what :func:`read_jsonl` returns)."""
    if not isinstance(records, (list, tuple)) or not records:
        raise TDDetrInputError(f"{source}: expected a non-empty list of records")
    not_dicts = [f"record {i + 1}" for i, record in enumerate(records) if not isinstance(record, dict)]
    if not_dicts:
        problems = InputProblems()
        problems.add(f"{source}: records that are not JSON objects / dicts", not_dicts)
        problems.raise_if_any(f"invalid {source}")


def _collect_qids(records: list[dict], source: str, problems: InputProblems) -> np.ndarray:
    raw = [record.get("qid") for record in records]
    no_qid = [f"record {i + 1}" for i, q in enumerate(raw) if not _is_int(q)]
    problems.add(f"{source}: records without an integer 'qid'", no_qid)
    qids = np.array([q if _is_int(q) else -1 for q in raw], dtype=np.int64)
    unique, counts = np.unique(qids[[_is_int(q) for q in raw]], return_counts=True)
    problems.add(f"{source}: duplicate qids", unique[counts > 1].tolist())
    return qids


def _key_presence(records: list[dict], key: str, labels: list[str], source: str, problems: InputProblems) -> bool:
    """True when every record has ``key``; a key present on only some records is a problem (listed by qid)."""
    present = [key in record for record in records]
    if any(present) and not all(present):
        missing = [lab for lab, p in zip(labels, present) if not p]
        problems.add(f"{source}: '{key}' missing (present on other lines)", missing)
    return all(present)


def _pack_ragged(
    lists: list, labels: list[str], width: int | None, field: str, source: str, problems: InputProblems,
    integer: bool = False, windows: bool = False,
) -> tuple[np.ndarray, np.ndarray] | None:
    """Concatenate per-record lists (of numbers, or of ``width``-long number rows) into one array plus lengths.

    Float values must be finite; ``windows``: rows are [start, end, ...] with start <= end. Fast path: one
    ``np.array`` call; only when it fails are the records checked one by one to name the culprits (the others are
    still checked, so that one report lists everything). Returns None when any record is malformed.
    """
    shape_text = "a list of numbers" if width is None else f"a list of [{', '.join(['number'] * width)}] rows"
    lengths = np.array([len(x) if isinstance(x, (list, tuple, np.ndarray)) else -1 for x in lists], dtype=np.int64)
    if (lengths < 0).any():
        problems.add(f"{source}: '{field}' is not {shape_text}", [lab for lab, n in zip(labels, lengths) if n < 0])
        return None
    expected_ndim = 1 if width is None else 2

    def well_formed(array: np.ndarray) -> bool:
        kinds = "iu" if integer else "iuf"
        return (
            array.dtype.kind in kinds
            and array.ndim == expected_ndim
            and (width is None or array.shape[1] == width)
        )

    try:
        flat = np.array(list(chain.from_iterable(lists)))
        ok = well_formed(flat) or flat.size == 0
    except (ValueError, TypeError):
        ok = False
    if not ok:  # find the offending records
        bad = []
        for lab, x in zip(labels, lists):
            try:
                array = np.array(x)
                if array.size and not well_formed(array):
                    bad.append(lab)
            except (ValueError, TypeError):
                bad.append(lab)
        problems.add(f"{source}: '{field}' is not {shape_text}" + (" (integers)" if integer else ""), bad or labels[:1])
        good = [i for i, lab in enumerate(labels) if lab not in set(bad)]
        if bad and good:
            _pack_ragged(
                [lists[i] for i in good], [labels[i] for i in good], width, field, source, problems, integer, windows
            )
        return None
    flat = flat.astype(np.int64 if integer else np.float64).reshape((-1,) if width is None else (-1, width))
    if not integer:
        finite = np.isfinite(flat) if width is None else np.isfinite(flat).all(axis=1)
        owner = np.repeat(np.arange(len(lists)), lengths)
        problems.add(f"{source}: NaN or infinite values in '{field}'", [labels[i] for i in np.unique(owner[~finite])])
        if windows:
            reversed_rows = np.unique(owner[flat[:, 0] > flat[:, 1]])
            problems.add(f"{source}: windows with start > end", [labels[i] for i in reversed_rows])
    return flat, lengths


def _scatter(flat: np.ndarray, lengths: np.ndarray, max_len: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Ragged (flat + lengths) -> zero-padded [rows, max_len, ...] array, cutting each row to ``max_len``."""
    kept = lengths if max_len is None else np.minimum(lengths, max_len)
    width = max(int(kept.max(initial=0)), 1)
    rows = np.repeat(np.arange(len(lengths)), lengths)
    cols = np.arange(len(flat)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    keep = cols < width
    padded = np.zeros((len(lengths), width) + flat.shape[1:], dtype=flat.dtype)
    padded[rows[keep], cols[keep]] = flat[keep]
    return padded, kept


def pack_submission(
    records: list[dict], *, max_windows: int | None = 10, source: str = "submission",
    problems: InputProblems | None = None,
) -> PackedSubmission:
    """Validate a submission and pack it into arrays.

    Checks: integer unique qids; ``pred_relevant_windows`` as [start, end, score] rows of finite numbers with
    start <= end (all windows are checked, only the first ``max_windows`` are kept: the official mAP uses the first 10);
    ``pred_saliency_scores`` as non-empty lists of finite numbers. Either key must be on every line or on none.
    Raises one :class:`TDDetrInputError` unless an outside ``problems`` collector is given (then the caller raises).
    """
    require_records(records, source)
    own = problems is None
    problems = InputProblems() if own else problems
    qids = _collect_qids(records, source, problems)
    labels = [_label(i, r.get("qid")) for i, r in enumerate(records)]
    windows = num_windows = saliency = num_saliency = None
    if _key_presence(records, "pred_relevant_windows", labels, source, problems):
        packed = _pack_ragged(
            [r["pred_relevant_windows"] for r in records], labels, 3, "pred_relevant_windows", source, problems,
            windows=True,
        )
        if packed is not None:
            windows, num_windows = _scatter(*packed, max_windows)
    if _key_presence(records, "pred_saliency_scores", labels, source, problems):
        packed = _pack_ragged(
            [r["pred_saliency_scores"] for r in records], labels, None, "pred_saliency_scores", source, problems
        )
        if packed is not None:
            flat, lengths = packed
            problems.add(f"{source}: empty 'pred_saliency_scores'", [lab for lab, n in zip(labels, lengths) if n == 0])
            saliency, num_saliency = _scatter(flat, lengths)
    if windows is None and saliency is None and not problems:
        problems.add(f"{source}: no 'pred_relevant_windows' nor 'pred_saliency_scores' on any line", ["all records"])
    if own:
        problems.raise_if_any(f"invalid {source}")
    return PackedSubmission(qids, windows, num_windows, saliency, num_saliency)


def ground_truth_has_saliency(records: list[dict]) -> bool:
    """Whether the annotations carry highlight labels (QVHighlights does, Charades-STA does not)."""
    return any("saliency_scores" in record for record in records)


def pack_ground_truth(
    records: list[dict], *, moments: bool = True, highlights: bool = True, clip_length: float = 2.0,
    source: str = "ground truth", problems: InputProblems | None = None,
) -> PackedGroundTruth:
    """Validate annotations and pack what the requested metrics need.

    ``moments``: every record needs a non-empty ``relevant_windows`` of finite [start, end] with start <= end (the
    official evaluator crashes or gives NaN otherwise). ``highlights``: ``duration`` > 0, ``relevant_clip_ids`` and
    ``saliency_scores`` (rows of 3 integer annotator scores) of equal length, with clip ids in
    [0, int(duration / clip_length)).
    """
    require_records(records, source)
    own = problems is None
    problems = InputProblems() if own else problems
    qids = _collect_qids(records, source, problems)
    labels = [_label(i, r.get("qid")) for i, r in enumerate(records)]
    windows = num_windows = saliency = num_clips = None
    if moments:
        has = [isinstance(r.get("relevant_windows"), list) and len(r["relevant_windows"]) > 0 for r in records]
        without = [lab for lab, h in zip(labels, has) if not h]
        problems.add(f"{source}: no 'relevant_windows' (nothing to score against)", without)
        if all(has):
            packed = _pack_ragged(
                [r["relevant_windows"] for r in records], labels, 2, "relevant_windows", source, problems, windows=True
            )
            if packed is not None:
                windows, num_windows = _scatter(*packed)
    if highlights:
        needed = ("duration", "relevant_clip_ids", "saliency_scores")
        has = [all(k in r for k in needed) for r in records]
        problems.add(f"{source}: missing one of {needed}", [lab for lab, h in zip(labels, has) if not h])
        durations = [r.get("duration") for r in records]
        bad_duration = [lab for lab, d in zip(labels, durations) if not (_is_number(d) and np.isfinite(d) and d > 0)]
        problems.add(f"{source}: 'duration' is not a positive number", bad_duration)
        if all(has) and not bad_duration:
            clip_ids = _pack_ragged(
                [r["relevant_clip_ids"] for r in records], labels, None, "relevant_clip_ids", source, problems,
                integer=True,
            )
            scores = _pack_ragged(
                [r["saliency_scores"] for r in records], labels, 3, "saliency_scores", source, problems, integer=True
            )
            if clip_ids is not None and scores is not None:
                (ids, id_counts), (rows, row_counts) = clip_ids, scores
                problems.add(
                    f"{source}: 'relevant_clip_ids' and 'saliency_scores' differ in length",
                    [lab for lab, a, b in zip(labels, id_counts, row_counts) if a != b],
                )
                # int() of a positive float truncates, exactly like the official int(duration / 2)
                num_clips = (np.asarray(durations, dtype=np.float64) / clip_length).astype(np.int64)
                owner = np.repeat(np.arange(len(records)), id_counts)
                out_of_range = (ids < 0) | (ids >= num_clips[owner])
                problems.add(
                    f"{source}: relevant_clip_ids outside [0, int(duration / {clip_length:g}))",
                    [labels[i] for i in np.unique(owner[out_of_range])],
                )
                if (id_counts == row_counts).all() and not out_of_range.any():
                    saliency = np.zeros((len(records), max(int(num_clips.max(initial=0)), 1), 3), dtype=np.int64)
                    saliency[owner, ids] = rows  # duplicate ids: the last one wins, as in the official fancy assignment
    if own:
        problems.raise_if_any(f"invalid {source}")
    return PackedGroundTruth(qids, windows, num_windows, saliency, num_clips)
