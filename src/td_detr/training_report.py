"""What `td-detr train` prints: one aligned line per evaluation (epoch, training loss, R1@0.5, R1@0.7, mAP, best so
far) instead of the Trainer's dicts, and the closing table (which epoch was kept, selected on which split, and the
held-out split's numbers when there is one), and an estimate of the run's time after its first steps."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from tqdm.auto import tqdm
from transformers import ProgressCallback, TrainerCallback

COLUMNS = (("R1@0.5", "MR-full-R1@0.5"), ("R1@0.7", "MR-full-R1@0.7"), ("mAP", "MR-full-mAP"))


def _number(value, width: int) -> str:
    return ("-" if value is None else f"{value:.2f}").rjust(width)


@dataclass
class EpochRow:
    epoch: float
    loss: float | None
    metrics: dict = field(default_factory=dict)  # brief metric name -> value


class QuietProgressCallback(ProgressCallback):
    """The Trainer's progress bar without its per-log dict lines (EpochReportCallback prints those)."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        pass


class EpochReportCallback(TrainerCallback):
    """Prints a header, then a line per evaluation; keeps the rows and the best one (by `selection_metric`)."""

    def __init__(self, selection_metric: str, split: str):
        self.selection_metric, self.split = selection_metric, split
        self.rows: list[EpochRow] = []
        self.best: EpochRow | None = None
        self._loss = None

    def header(self) -> str:
        names = "".join(label.rjust(9) for label, _ in COLUMNS)
        return f"{'epoch':>7}{'loss':>9}{names}   best {self.selection_metric} ({self.split})"

    def on_train_begin(self, args, state, control, **kwargs):
        if state.is_world_process_zero and args.eval_strategy != "no":
            tqdm.write(self.header())

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "loss" in logs:
            self._loss = float(logs["loss"])

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        if not metrics or not state.is_world_process_zero or state.global_step == 0:
            return
        prefix = "eval_"
        brief = {k[len(prefix):]: v for k, v in metrics.items() if k.startswith(prefix)}
        if self.selection_metric not in brief or not state.is_world_process_zero:
            return
        row = EpochRow(epoch=float(state.epoch or 0), loss=self._loss, metrics=brief)
        if self.rows and self.rows[-1].epoch == row.epoch:  # the evaluation after training re-scores the kept model
            return
        self.rows.append(row)
        if self.best is None or brief[self.selection_metric] > self.best.metrics[self.selection_metric]:
            self.best = row
        best = f"{self.best.metrics[self.selection_metric]:.2f} (epoch {self.best.epoch:g})"
        values = "".join(_number(brief.get(key), 9) for _, key in COLUMNS)
        tqdm.write(f"{row.epoch:>7.4g}{_number(row.loss, 9)}{values}   {best}")


def final_table(kept: EpochRow | None, selection_split: str | None, selection: dict | None,
                held_out_split: str | None = None, held_out: dict | None = None) -> str:
    """The closing summary: the kept epoch, its numbers on the selection split and, when given, on the held-out
    split (the headline, since the selection split chose the epoch)."""
    labels = "".join(label.rjust(9) for label, _ in COLUMNS)
    lines = [f"{'split':<12}{'role':<34}{labels}"]
    if selection is not None:
        role = f"chose epoch {kept.epoch:g}" if kept else "last epoch (no selection)"
        lines.append(f"{selection_split:<12}{role:<34}" + "".join(_number(selection.get(key), 9) for _, key in COLUMNS))
    if held_out is not None:
        lines.append(f"{held_out_split:<12}{'held out: the number to report':<34}"
                     + "".join(_number(held_out.get(key), 9) for _, key in COLUMNS))
    return "\n".join(lines)


class TimeEstimateCallback(TrainerCallback):
    """Prints how long the run's remaining optimizer steps will take, at the pace of `measured_steps` steps timed
    after the first (which pays for warm-up); a step with an evaluation or a checkpoint before it is not timed (those
    come on top of the estimate). Printed once, when enough steps were timed or at the last step."""

    def __init__(self, measured_steps: int = 5):
        self.measured_steps = measured_steps
        self._last: float | None = None  # clock at the end of the previous step
        self._timed: list[float] = []
        self._interrupted = self._done = False

    def on_evaluate(self, args, state, control, **kwargs):
        self._interrupted = True

    def on_save(self, args, state, control, **kwargs):
        self._interrupted = True

    def on_step_end(self, args, state, control, **kwargs):
        now = time.perf_counter()
        if self._last is not None and not self._interrupted:
            self._timed.append(now - self._last)
        self._last, self._interrupted = now, False
        last_step = state.global_step >= state.max_steps
        if self._done or not self._timed or not state.is_world_process_zero:
            return
        if len(self._timed) >= self.measured_steps or last_step:
            self._done = True
            per_step = sum(self._timed) / len(self._timed)
            remaining = state.max_steps - state.global_step
            tqdm.write(f"time estimate: {per_step:.2f} s per step, ~{_duration(per_step * remaining)} for the "
                       f"remaining {remaining} of {state.max_steps} steps (evaluations and checkpoints extra)")


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
