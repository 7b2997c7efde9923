"""A training output folder belongs to one run.

* :func:`run_fingerprint` says what a run is (model config, data, seed, optimisation settings that change the
  trajectory); ``run.json`` in the folder records it, and every checkpoint gets a copy as its last file.
* :class:`RunFolder` guards the folder: ``train`` refuses a folder that holds another run unless told ``--resume``
  (only a run with the same fingerprint) or ``--overwrite`` (its run files are removed first), and holds a lock so
  two ``train`` processes never write one folder (the lock is an ``flock``: a killed process releases it).
* Checkpoints count as complete once their ``run.json`` exists: the Trainer writes ``checkpoint-N`` and
  :class:`CompleteCheckpointCallback` then adds ``run.json`` atomically (temporary name, then rename). A kill while the
  Trainer writes leaves ``checkpoint-N`` without it; :meth:`RunFolder.last_complete_checkpoint` moves such a folder
  aside with a warning and resumes from the previous complete one.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import sys
from pathlib import Path

from transformers import TrainerCallback
from transformers.trainer_utils import get_last_checkpoint

from .errors import TDDetrInputError
from .output_paths import check_writable_dir

RUN_FILE = "run.json"
CHECKPOINTS = "checkpoints"
LOCK_FILE = ".td-detr-train.lock"
# Files that mark a folder as holding a run (with a non-empty checkpoints/).
RUN_MARKERS = (RUN_FILE, "config.json", "model.safetensors")
# Files a finished run leaves in its folder (besides checkpoints/): removed by --overwrite.
RUN_FILES = (*RUN_MARKERS, "README.md", "metrics.json", "predictions.jsonl", "preprocessor_config.json")
# Config entries that do not describe the run (library version, bookkeeping written by save_pretrained).
_VOLATILE_CONFIG_KEYS = ("transformers_version", "_name_or_path", "architectures", "dtype", "torch_dtype")


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def run_fingerprint(config, data, seed: int, training: dict, execution: dict | None = None) -> dict:
    """What makes two runs the same run: the model config, the data (annotation contents, feature folders, rows),
    the seed and the given optimisation settings (e.g. learning rate, batch size, precision; not the number of steps,
    so a resumed run may be extended). Returns ``{"fingerprint": sha256, "run": {...}}``, plus ``"execution"`` when
    given: how the run is executed (device, compile, workers), recorded but not fingerprinted."""
    model = {key: value for key, value in config.to_dict().items() if key not in _VOLATILE_CONFIG_KEYS}
    settings = data.settings
    description = {
        "model": model,
        "data": {
            "name": data.name,
            "annotations": {split: _sha256(path) for split, path in sorted(settings.annotation_files.items())},
            "video_feature_dirs": [str(folder) for folder in settings.video_feature_dirs],
            "text_feature_dir": str(settings.text_feature_dir),
            "train_rows": len(data.splits["train"]),
        },
        "seed": seed,
        "training": training,
    }
    text = json.dumps(description, sort_keys=True, default=str)
    recorded = {"fingerprint": hashlib.sha256(text.encode()).hexdigest(), "run": json.loads(text)}
    if execution is not None:
        recorded["execution"] = execution
    return recorded


def _differences(old: dict, new: dict, prefix: str = "") -> list[str]:
    """Dotted names of the entries that differ between two run descriptions."""
    names = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            names += _differences(a, b, f"{prefix}{key}.")
        elif a != b:
            names.append(f"{prefix}{key} ({a!r} → {b!r})" if not isinstance(a, dict) else f"{prefix}{key}")
    return names


def write_json_atomically(path: Path, value: dict) -> None:
    """Write JSON under a temporary name in the same folder, then rename: readers see the old file or the new one."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(value, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _read_run(path: Path) -> dict | None:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) and "fingerprint" in value else None


class RunLock:
    """An exclusive ``flock`` on ``folder/.td-detr-train.lock`` holding the owner's PID. The kernel drops it when the
    process dies, so a lock file left by a killed run is simply taken over."""

    def __init__(self, folder: Path):
        self.path = Path(folder) / LOCK_FILE
        self._handle = None

    def acquire(self) -> None:
        while True:
            handle = open(self.path, "a+", encoding="utf-8")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                handle.seek(0)
                owner = handle.read().strip() or "unknown"
                handle.close()
                raise TDDetrInputError(
                    f"--output-dir {self.path.parent} is in use by another td-detr train (PID {owner}); wait for it "
                    "to finish or choose another --output-dir"
                ) from None
            try:
                same_file = os.stat(self.path).st_ino == os.fstat(handle.fileno()).st_ino
            except FileNotFoundError:
                same_file = False
            if same_file:
                break
            handle.close()  # the holder released (and removed) the file between our open and flock: try again
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self._handle = handle

    def release(self) -> None:
        if self._handle is not None:
            self.path.unlink(missing_ok=True)
            self._handle.close()  # closing drops the flock
            self._handle = None


class RunFolder:
    """The output folder of one training run (see the module docstring)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.checkpoints = self.path / CHECKPOINTS
        self.lock = RunLock(self.path)
        self._created = False

    def held_run_files(self) -> list[str]:
        names = [name for name in RUN_MARKERS if (self.path / name).exists()]
        if self.checkpoints.is_dir() and any(self.checkpoints.iterdir()):
            names.append(f"{CHECKPOINTS}/")
        return names

    def claim(self, *, resume: bool, overwrite: bool) -> None:
        """Check the folder before any work and lock it: writable, and either free of runs, or ``resume`` /
        ``overwrite`` given. Raises :class:`TDDetrInputError` (exit 2)."""
        if resume and overwrite:
            raise TDDetrInputError("--resume and --overwrite exclude each other")
        check_writable_dir(self.path, "--output-dir")
        held = self.held_run_files() if self.path.is_dir() else []
        if held and not (resume or overwrite):
            raise TDDetrInputError(
                f"--output-dir {self.path} holds another run ({', '.join(held)}): pass --resume to continue it, "
                "--overwrite to replace it, or choose another --output-dir"
            )
        self._created = not self.path.exists()
        self.path.mkdir(parents=True, exist_ok=True)
        self.lock.acquire()

    def release(self) -> None:
        """Drop the lock; a folder this run created and left empty (it stopped on bad input) is removed."""
        self.lock.release()
        if self._created and self.path.is_dir() and not any(self.path.iterdir()):
            self.path.rmdir()

    def start(self, run: dict, *, resume: bool) -> None:
        """Record the run: on resume the folder's run must be this one; otherwise old run files are removed (they
        exist only with --overwrite, :meth:`claim` refused them otherwise) and ``run.json`` is written."""
        recorded = self.path / RUN_FILE
        if resume:
            old = _read_run(recorded)
            if old is None:
                raise TDDetrInputError(f"--resume: {self.path} has no readable {RUN_FILE}, so its run cannot be "
                                       "checked; use --overwrite to start a new run there")
            self._check_same_run(old, run, str(recorded))
            return
        if self.held_run_files():  # only with --overwrite: claim() refused otherwise
            for name in RUN_FILES:
                (self.path / name).unlink(missing_ok=True)
            shutil.rmtree(self.checkpoints, ignore_errors=True)
        write_json_atomically(recorded, run)

    @staticmethod
    def _check_same_run(old: dict, new: dict, where: str) -> None:
        if old.get("fingerprint") != new["fingerprint"]:
            changed = _differences(old.get("run", {}), new["run"])
            shown = "; ".join(changed[:4]) + (f"; ... ({len(changed) - 4} more)" if len(changed) > 4 else "")
            raise TDDetrInputError(
                f"--resume: {where} records a different run ({shown or 'fingerprint differs'}); resume with the "
                "same settings, or use --overwrite / another --output-dir"
            )

    def resume_checkpoint(self, requested: str, run: dict) -> str:
        """The checkpoint to resume: ``requested`` ("latest" or a path) after checking it is complete and of this
        run."""
        if requested != "latest":
            checkpoint = Path(requested)
            if not checkpoint.is_dir():
                raise TDDetrInputError(f"--resume {requested}: not a checkpoint folder")
            recorded = _read_run(checkpoint / RUN_FILE)
            if recorded is None:
                raise TDDetrInputError(f"--resume {requested}: incomplete checkpoint (no {RUN_FILE}: the run was "
                                       "stopped while writing it)")
            self._check_same_run(recorded, run, str(checkpoint / RUN_FILE))
            return str(checkpoint)
        checkpoint = self.last_complete_checkpoint()
        if checkpoint is None:
            raise TDDetrInputError(f"--resume: no complete checkpoint-* folder in {self.checkpoints}")
        self._check_same_run(_read_run(Path(checkpoint) / RUN_FILE), run, str(Path(checkpoint) / RUN_FILE))
        return checkpoint

    def last_complete_checkpoint(self) -> str | None:
        """The highest ``checkpoint-N`` holding ``run.json``; incomplete ones above it are renamed to
        ``incomplete-checkpoint-N`` (kept, never deleted) with a warning."""
        if not self.checkpoints.is_dir():
            return None
        while (checkpoint := get_last_checkpoint(str(self.checkpoints))) is not None:
            if _read_run(Path(checkpoint) / RUN_FILE) is not None:
                return checkpoint
            aside = Path(checkpoint).with_name(f"incomplete-{Path(checkpoint).name}")
            shutil.rmtree(aside, ignore_errors=True)
            os.replace(checkpoint, aside)
            message = (f"{checkpoint} is incomplete (the run was stopped while writing it): moved to {aside.name}, "
                       "resuming from the previous checkpoint")
            print(f"warning: {message}", file=sys.stderr)
        return None


class CompleteCheckpointCallback(TrainerCallback):
    """Marks a checkpoint complete once the Trainer has written all of it: ``run.json`` as its last file."""

    def __init__(self, run: dict):
        self.run = run

    def on_save(self, args, state, control, **kwargs):
        if args.should_save:
            checkpoint = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            if checkpoint.is_dir():
                write_json_atomically(checkpoint / RUN_FILE, self.run)
        return control
