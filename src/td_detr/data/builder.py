"""A ``datasets`` builder for moment retrieval data in the standard layout (see :mod:`td_detr.data.layout`).

Three configs:

* ``qvhighlights``: clip 2 s, model input capped at 75 clips, query at 32 tokens, saliency kept. ``data_dir`` holds
  ``highlight_{train,val,test}_release.jsonl`` (``highlight_test_with_gt.jsonl`` is preferred for ``test`` when present)
  and the feature folders ``slowfast_features/``, ``clip_features/``, ``clip_text_features/``.
* ``charades_sta``: clip 1 s, no video cap, query capped at 100 tokens, no saliency;
  ``charades_sta_{train,test}_tvr_format.jsonl``.
* ``layout``: any data set in the standard layout. ``annotation_files`` ({split: file}), ``video_feature_dirs``,
  ``text_feature_dir`` and ``clip_length`` are given as arguments or read from ``dataset_info.json`` in ``data_dir``
  (which ``td-detr make-synthetic`` writes).

File names are relative to ``data_dir`` unless absolute; feature folders are relative to ``feature_root`` (default
``data_dir``). Feature sizes are read from the files. Rows are prepared by a
:class:`~td_detr.processing_td_detr.TDDetrProcessor` (per-type widths checked, L2-normalised, cut to the shortest type,
concatenated; text cut to ``max_query_length``). ``max_video_length`` (what the model takes in one row) cuts the rows
of the ``train`` split only, as the official training loader does; every other split keeps all clips and the
evaluation collator slides windows over longer videos, so no evaluated video is cut silently (evaluating the ``train``
split sees its cut rows). ``max_video_length`` / ``max_query_length`` of None or -1 mean
no cap (stored as -1: ``datasets`` drops ``None`` overrides). ``max_samples`` keeps the first N records of each split.

Caching: the cache directory follows the builder's source code, the annotation files' contents (they are passed as
``data_files`` with a content hash as their origin metadata) and the feature folders' listing (names, sizes, mtimes),
so edited inputs are never served from a stale cache. ``datasets`` writes into a ``.incomplete`` folder and removes it
when generation fails, so an error leaves nothing half-written behind. Nothing here touches the network.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import logging
import os
from pathlib import Path

import datasets
import numpy as np
from datasets.data_files import DataFilesDict, DataFilesList
from datasets.exceptions import DatasetGenerationError

from ..errors import TDDetrInputError
from ..registry import DATA_SETS
from . import layout
from .layout import (
    TEXT_FEATURE_KEY,
    VIDEO_FEATURE_KEY,
    load_video_feature_types,
    read_annotations,
    read_feature_array,
    text_feature_path,
    video_feature_path,
)

logger = logging.getLogger(__name__)

LAYOUT_INFO_FILENAME = "dataset_info.json"
NO_LIMIT = -1
# Settings that a layout's dataset_info.json may provide (explicit keyword arguments win).
_LAYOUT_INFO_KEYS = (
    "video_feature_dirs", "text_feature_dir", "clip_length", "max_video_length", "max_query_length", "with_saliency"
)


@dataclasses.dataclass
class MomentRetrievalConfig(datasets.BuilderConfig):
    """Where the files are and how samples are cut. See the module docstring for the meaning of each field."""

    annotation_files: dict | None = None  # split -> file name, or a list of candidates (first existing wins)
    feature_root: str | None = None
    video_feature_dirs: tuple = ("slowfast_features", "clip_features")
    text_feature_dir: str = "clip_text_features"
    clip_length: float = NO_LIMIT  # seconds per feature row; must be set for the layout config
    max_video_length: int = NO_LIMIT
    max_query_length: int = NO_LIMIT
    with_saliency: bool = True
    max_samples: int = NO_LIMIT
    # Set by the builder (not by users): listing fingerprint of the feature folders, part of the cache key, and which
    # table to build: "queries" (annotations + text features) or "videos" (each video's features once).
    features_fingerprint: str = ""
    table: str = "queries"


@dataclasses.dataclass(frozen=True)
class DatasetSettings:
    """What a consumer of the rows needs to know about a resolved data set."""

    clip_length: float
    max_video_length: int | None
    max_query_length: int | None
    with_saliency: bool
    annotation_files: dict  # split -> absolute path
    video_feature_dirs: tuple  # absolute paths
    text_feature_dir: str
    video_feature_dims: tuple  # one per feature type; video_features has sum(video_feature_dims) columns
    text_feature_dim: int

    def processor(self, **kwargs):
        """A :class:`~td_detr.processing_td_detr.TDDetrProcessor` for these features (feature types named by their
        folders); ``kwargs`` override its settings."""
        from ..processing_td_detr import TDDetrProcessor

        settings = dict(
            clip_length=self.clip_length, max_video_length=self.max_video_length,
            max_query_length=self.max_query_length, video_feature_types=[os.path.basename(os.path.normpath(d))
                                                                         for d in self.video_feature_dirs],
            video_feature_dims=list(self.video_feature_dims), text_feature_dim=self.text_feature_dim,
        )
        return TDDetrProcessor(**{**settings, **kwargs})


def _file_metadata(path: str) -> tuple:
    """Origin metadata for a data file: size, mtime and a content hash, so any edit changes the cache key."""
    stat = os.stat(path)
    digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    return (str(stat.st_size), str(stat.st_mtime_ns), digest)


def _folders_fingerprint(folders) -> str:
    """Hash of (name, size, mtime) of every file in the feature folders; cheap even for ~10k files."""
    digest = hashlib.sha256()
    for folder in folders:
        digest.update(f"\0{folder}\0".encode())
        if not os.path.isdir(folder):
            continue
        with os.scandir(folder) as entries:
            stats = sorted((entry.name, entry.stat()) for entry in entries if entry.is_file())
        for name, stat in stats:
            digest.update(f"{name}:{stat.st_size}:{stat.st_mtime_ns};".encode())
    return digest.hexdigest()[:16]


@functools.cache
def _code_hash() -> str:
    """Hash of the loading code, so a change in how rows are built invalidates old caches."""
    digest = hashlib.sha256()
    from .. import processing_td_detr

    for module_file in (__file__, layout.__file__, processing_td_detr.__file__):
        digest.update(Path(module_file).read_bytes())
    return digest.hexdigest()[:16]


def _resolve_path(name: str, base: str | None) -> str:
    if os.path.isabs(name) or base is None:
        return os.path.abspath(name)
    return os.path.join(base, name)


def _resolve_config_kwargs(base: MomentRetrievalConfig, data_dir: str | None, overrides: dict) -> dict:
    """Merge preset, dataset_info.json and user overrides; return config kwargs with absolute paths and data_files."""
    unknown = set(overrides) - {f.name for f in dataclasses.fields(MomentRetrievalConfig)}
    if unknown:
        raise TDDetrInputError(f"unknown data set option(s): {', '.join(sorted(unknown))}")
    limits = ("max_video_length", "max_query_length", "max_samples")
    overrides = {key: NO_LIMIT if value is None and key in limits else value for key, value in overrides.items()}
    overrides = {key: value for key, value in overrides.items() if value is not None}
    for key in limits:
        if key in overrides:
            if not isinstance(overrides[key], int) or isinstance(overrides[key], bool):
                raise TDDetrInputError(f"{key} must be an int (-1 or None for no limit), got {overrides[key]!r}")
            overrides[key] = max(overrides[key], NO_LIMIT)
    settings = {field.name: getattr(base, field.name) for field in dataclasses.fields(MomentRetrievalConfig)}

    info_path = os.path.join(data_dir, LAYOUT_INFO_FILENAME) if data_dir else None
    if base.annotation_files is None and info_path and os.path.isfile(info_path):
        try:
            info = json.loads(Path(info_path).read_text(encoding="utf-8"))
            settings["annotation_files"] = dict(info["splits"])
            if not all(isinstance(name, str) for name in settings["annotation_files"].values()):
                raise ValueError("'splits' must map split names to file names")
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as error:
            raise TDDetrInputError(f"{info_path}: not a valid layout description ({error!r})") from None
        for key in _LAYOUT_INFO_KEYS:
            if info.get(key) is not None:
                settings[key] = info[key]
    settings.update(overrides)
    if settings["max_video_length"] is None:
        settings["max_video_length"] = NO_LIMIT
    if settings["max_query_length"] is None:
        settings["max_query_length"] = NO_LIMIT

    if not settings["annotation_files"]:
        raise TDDetrInputError(
            f"config '{base.name}' needs annotation_files={{split: file}} (or a {LAYOUT_INFO_FILENAME} in data_dir)"
        )
    clip_length = settings["clip_length"]
    if not isinstance(clip_length, (int, float)) or isinstance(clip_length, bool) or not clip_length > 0:
        raise TDDetrInputError(
            f"config '{base.name}' needs a positive clip_length (seconds per feature row), got {clip_length!r}"
        )
    settings["clip_length"] = float(clip_length)
    if isinstance(settings["video_feature_dirs"], str):
        settings["video_feature_dirs"] = (settings["video_feature_dirs"],)
    if not settings["video_feature_dirs"]:
        raise TDDetrInputError("video_feature_dirs must name at least one folder")

    files, looked_for = {}, []
    for split, candidates in settings["annotation_files"].items():
        candidates = [candidates] if isinstance(candidates, (str, os.PathLike)) else list(candidates)
        paths = [_resolve_path(os.fspath(c), data_dir) for c in candidates]
        found = next((p for p in paths if os.path.isfile(p)), None)
        if found is not None:
            files[split] = found
        elif "annotation_files" in overrides or base.annotation_files is None:
            # Files the user named explicitly (or a layout description listed) must exist.
            raise TDDetrInputError(f"annotation file for split '{split}' not found: {' or '.join(paths)}")
        else:
            looked_for += paths
            logger.warning("split '%s' skipped: none of %s exists", split, paths)
    if not files:
        raise TDDetrInputError(f"no annotation files found in {data_dir}: looked for {', '.join(looked_for)}")
    settings["annotation_files"] = files

    feature_root = settings["feature_root"] or data_dir
    video_dirs = tuple(_resolve_path(os.fspath(d), feature_root) for d in settings["video_feature_dirs"])
    text_dir = _resolve_path(os.fspath(settings["text_feature_dir"]), feature_root)
    settings.update(video_feature_dirs=video_dirs, text_feature_dir=text_dir, feature_root=feature_root)
    settings["features_fingerprint"] = _folders_fingerprint([*video_dirs, text_dir])
    settings.pop("name"), settings.pop("version"), settings.pop("data_dir"), settings.pop("description")
    settings["data_files"] = DataFilesDict(
        {split: DataFilesList([path], [_file_metadata(path)]) for split, path in files.items()}
    )
    return settings


def _reference_file(folder: str, pattern_suffixes: tuple) -> Path:
    """The first feature file of a folder (sorted by name): its size is the size every other file must have."""
    if not os.path.isdir(folder):
        raise TDDetrInputError(f"feature folder not found: {folder}")
    with os.scandir(folder) as entries:
        names = sorted(entry.name for entry in entries if entry.is_file() and entry.name.endswith(pattern_suffixes))
    if not names:
        raise TDDetrInputError(f"feature folder {folder} has no {' or '.join(pattern_suffixes)} files")
    return Path(folder) / names[0]


def _reference_sizes(video_feature_dirs, text_feature_dir) -> dict:
    """{folder: (dim, reference file)}: the size every file of the folder must have, read from its first file."""
    sizes = {}
    for folder in video_feature_dirs:
        path = _reference_file(folder, (".npz", ".npy"))
        sizes[folder] = (read_feature_array(path, VIDEO_FEATURE_KEY).shape[1], path)
    path = _reference_file(text_feature_dir, (".npz",))
    sizes[text_feature_dir] = (read_feature_array(path, TEXT_FEATURE_KEY).shape[1], path)
    return sizes


def _settings(cfg, sizes: dict) -> DatasetSettings:
    return DatasetSettings(
        clip_length=cfg["clip_length"],
        max_video_length=None if cfg["max_video_length"] < 0 else cfg["max_video_length"],
        max_query_length=None if cfg["max_query_length"] < 0 else cfg["max_query_length"],
        with_saliency=cfg["with_saliency"],
        annotation_files={split: files[0] for split, files in cfg["data_files"].items()},
        video_feature_dirs=tuple(cfg["video_feature_dirs"]),
        text_feature_dir=cfg["text_feature_dir"],
        video_feature_dims=tuple(sizes[folder][0] for folder in cfg["video_feature_dirs"]),
        text_feature_dim=sizes[cfg["text_feature_dir"]][0],
    )


class MomentRetrievalBuilder(datasets.GeneratorBasedBuilder):
    """Builds train/validation/test splits of (query, video) rows with float32 Array2D features.

    Use :func:`load_moment_retrieval_dataset` for the one-call version.
    """

    BUILDER_CONFIG_CLASS = MomentRetrievalConfig
    BUILDER_CONFIGS = [  # one per data set with files of its own (td_detr.registry), then the any-layout config
        *(MomentRetrievalConfig(name=name, **entry.builder) for name, entry in DATA_SETS.items() if entry.builder),
        MomentRetrievalConfig(
            name="layout",
            description="Any data set in the standard layout (files and clip length: arguments or dataset_info.json)",
        ),
    ]
    DEFAULT_CONFIG_NAME = "layout"
    DEFAULT_WRITER_BATCH_SIZE = 64  # a QVHighlights row is ~0.8 MB

    def __init__(
        self, config_name: str | None = None, data_dir=None, cache_dir=None, hash: str | None = None, **config_kwargs
    ):
        config_name = config_name or self.DEFAULT_CONFIG_NAME
        if config_name not in self.builder_configs:
            choices = ", ".join(self.builder_configs)
            raise TDDetrInputError(f"unknown data set config '{config_name}'; choose from {choices}")
        if config_kwargs.get("data_files") is not None:
            raise TDDetrInputError("pass annotation_files={split: file}, not data_files (the builder derives them)")
        config_kwargs.pop("data_files", None)
        data_dir = os.path.abspath(os.fspath(data_dir)) if data_dir is not None else None
        if data_dir is not None and not os.path.isdir(data_dir):
            raise TDDetrInputError(f"data_dir not found: {data_dir}")
        resolved = _resolve_config_kwargs(self.builder_configs[config_name], data_dir, config_kwargs)
        super().__init__(
            config_name=config_name,
            data_dir=data_dir,
            cache_dir=os.path.abspath(os.fspath(cache_dir)) if cache_dir is not None else None,
            dataset_name="moment_retrieval",
            hash=hash or _code_hash(),
            **resolved,
        )

    # -- schema ---------------------------------------------------------------------------------------------------

    def _feature_sizes(self):
        if getattr(self, "_reference", None) is None:
            self._reference = _reference_sizes(self.config.video_feature_dirs, self.config.text_feature_dir)
        return self._reference

    def _info(self) -> datasets.DatasetInfo:
        sizes = self._feature_sizes()
        video_dim = sum(sizes[folder][0] for folder in self.config.video_feature_dirs)
        text_dim = sizes[self.config.text_feature_dir][0]
        if self.config.table == "videos":
            features = datasets.Features({
                "vid": datasets.Value("string"),
                "video_features": datasets.Array2D(shape=(None, video_dim), dtype="float32"),
            })
            return datasets.DatasetInfo(description=self.config.description or "", features=features)
        features = datasets.Features(
            {
                "qid": datasets.Value("int64"),
                "query": datasets.Value("string"),
                "vid": datasets.Value("string"),
                "duration": datasets.Value("float64"),
                "text_features": datasets.Array2D(shape=(None, text_dim), dtype="float32"),
                "relevant_windows": datasets.List(datasets.List(datasets.Value("float64"))),
                "relevant_clip_ids": datasets.List(datasets.Value("int64")),
                "saliency_scores": datasets.List(datasets.List(datasets.Value("int64"))),
            }
        )
        return datasets.DatasetInfo(description=self.config.description or "", features=features)

    @property
    def settings(self) -> DatasetSettings:
        """Clip length, caps, resolved paths and feature sizes of this builder's data set."""
        cfg = {field.name: getattr(self.config, field.name) for field in dataclasses.fields(self.config)}
        return _settings(cfg, self._feature_sizes())

    # -- generation -----------------------------------------------------------------------------------------------

    def _split_generators(self, dl_manager):
        if self.config.table == "videos":
            files = {split: files[0] for split, files in self.config.data_files.items()}
            return [datasets.SplitGenerator(name="videos", gen_kwargs={"annotation_paths": files})]
        return [
            datasets.SplitGenerator(name=split, gen_kwargs={"split": split, "annotation_path": files[0]})
            for split, files in self.config.data_files.items()
        ]

    @property
    def processor(self):
        """The :class:`~td_detr.processing_td_detr.TDDetrProcessor` that prepares this data set's rows."""
        if getattr(self, "_processor", None) is None:
            self._processor = self.settings.processor()
        return self._processor

    def _load_video(self, vid: str, max_length: int) -> np.ndarray:
        cfg = self.config
        types = load_video_feature_types(vid, cfg.video_feature_dirs, max_length)
        sizes = self._feature_sizes()
        for folder, array in zip(cfg.video_feature_dirs, types):
            expected, reference = sizes[folder]
            if array.shape[1] != expected:
                raise TDDetrInputError(
                    f"feature size mismatch in {folder}: {video_feature_path(folder, vid)} has {array.shape[1]} "
                    f"columns but {reference} has {expected}"
                )
        return self.processor.prepare_video(types)

    def _records(self, annotation_path: str) -> list[dict]:
        records = read_annotations(annotation_path, clip_length=self.config.clip_length)
        return records[: self.config.max_samples] if self.config.max_samples >= 0 else records

    def _generate_examples(self, split: str | None = None, annotation_path: str | None = None, annotation_paths=None):
        if annotation_paths is not None:
            yield from self._generate_videos(annotation_paths)
            return
        cfg = self.config
        records = self._records(annotation_path)
        text_dim, text_reference = self._feature_sizes()[cfg.text_feature_dir]
        for record in records:
            qid, vid = record["qid"], record["vid"]
            try:
                text = read_feature_array(text_feature_path(cfg.text_feature_dir, qid), TEXT_FEATURE_KEY)
                if text.shape[1] != text_dim:
                    raise TDDetrInputError(
                        f"feature size mismatch in {cfg.text_feature_dir}: qid{qid}.npz has {text.shape[1]} columns "
                        f"but {text_reference} has {text_dim}"
                    )
                text = self.processor.prepare_text(text)
            except TDDetrInputError as error:
                raise TDDetrInputError(f"{split} split ({annotation_path}), qid {qid}, vid '{vid}': {error}") from None
            keep_saliency = cfg.with_saliency and "saliency_scores" in record
            yield qid, {
                "qid": qid,
                "query": record["query"],
                "vid": vid,
                "duration": record["duration"],
                "text_features": text,
                "relevant_windows": record.get("relevant_windows") or [],
                "relevant_clip_ids": record.get("relevant_clip_ids", []) if keep_saliency else [],
                "saliency_scores": record.get("saliency_scores", []) if keep_saliency else [],
            }


    def _generate_videos(self, annotation_paths: dict):
        """One row per video of all splits, whole (the train split's cut is applied when rows are read)."""
        seen = set()
        for split, annotation_path in annotation_paths.items():
            for record in self._records(annotation_path):
                qid, vid = record["qid"], record["vid"]
                if vid in seen:
                    continue
                seen.add(vid)
                try:
                    video = self._load_video(vid, NO_LIMIT)
                except TDDetrInputError as error:
                    raise TDDetrInputError(f"{split} split ({annotation_path}), qid {qid}, vid '{vid}': {error}") from None
                yield vid, {"vid": vid, "video_features": video}


def _prepare(builder) -> datasets.DatasetDict:
    try:
        builder.download_and_prepare()
    except DatasetGenerationError as error:
        cause = error.__cause__
        if isinstance(cause, TDDetrInputError):
            raise TDDetrInputError(str(cause)) from None
        raise
    return builder.as_dataset()


def _config_and_dir(name_or_layout, data_dir):
    """A config name, or a folder in the standard layout (read with the ``layout`` config)."""
    name = os.fspath(name_or_layout)
    if name in MomentRetrievalBuilder.builder_configs:
        return name, data_dir
    if os.path.isdir(name):
        if data_dir is not None:
            raise TDDetrInputError(f"give either a layout folder ({name}) or data_dir, not both")
        return "layout", name
    raise TDDetrInputError(
        f"'{name}' is neither a data set config ({', '.join(MomentRetrievalBuilder.builder_configs)}) nor a folder"
    )


def get_dataset_settings(name_or_layout="layout", data_dir=None, **config_kwargs) -> DatasetSettings:
    """Resolve a data set (clip length, caps, paths, feature sizes) without preparing it or touching any cache."""
    config_kwargs.pop("cache_dir", None)
    config_name, data_dir = _config_and_dir(name_or_layout, data_dir)
    data_dir = os.path.abspath(os.fspath(data_dir)) if data_dir is not None else None
    cfg = _resolve_config_kwargs(MomentRetrievalBuilder.builder_configs[config_name], data_dir, config_kwargs)
    return _settings(cfg, _reference_sizes(cfg["video_feature_dirs"], cfg["text_feature_dir"]))


def load_moment_retrieval_dataset(
    name_or_layout="layout", data_dir=None, cache_dir=None, *, format: str | None = "torch", **config_kwargs
) -> datasets.DatasetDict:
    """Prepare (or reopen from the cache) and return all splits of a moment-retrieval data set.

    ``name_or_layout`` is ``"qvhighlights"``, ``"charades_sta"``, ``"layout"`` or a folder in the standard layout
    (e.g. one written by ``td-detr make-synthetic``). Other keyword arguments override config fields (see
    :class:`MomentRetrievalConfig`). ``format`` ("torch" or "numpy") applies to the two feature columns only (float32
    [L, Dv] / [T, Dt] tensors or arrays); every other column stays a plain Python value, so ``relevant_windows`` is
    always a list of [st, ed] pairs, even when empty. Each split joins its rows to the video table when read
    (:mod:`.video_table`): 32 random QVHighlights-size rows take about as long as ``np.load`` of their feature files
    (scripts/benchmark_data.py); the collator takes either format. ``format=None`` gives Python lists.
    Bad input raises :class:`TDDetrInputError`, also when it is found during generation.
    """
    from .video_table import VideoJoin

    if "table" in config_kwargs:
        raise TDDetrInputError("unknown data set option(s): table")
    config_name, data_dir = _config_and_dir(name_or_layout, data_dir)
    make = functools.partial(MomentRetrievalBuilder, config_name=config_name, data_dir=data_dir, cache_dir=cache_dir)
    queries = make(**config_kwargs)
    videos = _prepare(make(**config_kwargs, table="videos"))["videos"]  # first: it checks every video file
    splits = _prepare(queries)
    cap = queries.settings.max_video_length
    return datasets.DatasetDict({
        split: rows.with_transform(VideoJoin(videos, cap if split == "train" else None, format))
        for split, rows in splits.items()
    })
