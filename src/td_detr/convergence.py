"""Training until converged: stop once the selection metric has not improved for a fifth of the run.

At the e-th evaluation (1-based) with the best score seen at evaluation b, training stops when
``e - b >= fraction * e`` (and ``e >= min_evaluations``, so one noisy early evaluation cannot end a run); the
``--epochs`` / ``--max-steps`` of the run are the cap. The rule is relative, unlike transformers'
``EarlyStoppingCallback`` (a fixed patience): a run that improved at epoch 40 gets 10 more epochs, one that improved
at epoch 8 gets 2. With ``min_improvement`` (as that callback's threshold) a score counts as an improvement only when
it beats the best so far by more than that: after the learning rate has dropped twice, gains of a few hundredths of a
point each would otherwise keep a run going to its cap. The reported best epoch is the true best either way.
Everything is read from ``state.log_history``, so a resumed run stops where it would have.
"""

from __future__ import annotations

from transformers import TrainerCallback

CONVERGENCE_FRACTION = 0.2
MIN_EVALUATIONS = 10


def selection_history(log_history: list[dict], metric: str) -> list[tuple[float, int, float]]:
    """(epoch, step, score) of every evaluation during training that reported `metric` (``eval_<metric>``)."""
    key = f"eval_{metric}"
    rows = [(float(entry.get("epoch") or 0.0), int(entry.get("step") or 0), float(entry[key]))
            for entry in log_history if key in entry]
    seen, unique = set(), []
    for row in rows:  # the re-scoring after training repeats the last step
        if row[1] not in seen:
            seen.add(row[1])
            unique.append(row)
    return unique


def best_index(scores: list[float], greater_is_better: bool = True, min_improvement: float = 0.0) -> int:
    """0-based index of the first best score: a later score counts only when it beats the best so far by more than
    `min_improvement` (so a later tie is no improvement)."""
    best = 0
    for index, score in enumerate(scores):
        gain = score - scores[best] if greater_is_better else scores[best] - score
        if gain > min_improvement:
            best = index
    return best


def converged(scores: list[float], greater_is_better: bool = True, fraction: float = CONVERGENCE_FRACTION,
              min_evaluations: int = MIN_EVALUATIONS, min_improvement: float = 0.0) -> bool:
    """Whether the run with these evaluation scores (in order) has gone a `fraction` of itself without improving by
    more than `min_improvement`."""
    evaluations = len(scores)
    if evaluations < max(min_evaluations, 1):
        return False
    return evaluations - (best_index(scores, greater_is_better, min_improvement) + 1) >= fraction * evaluations


def convergence_report(log_history: list[dict], metric: str, greater_is_better: bool = True) -> dict:
    """Best epoch / step, epochs and evaluations run, from a Trainer's log history."""
    history = selection_history(log_history, metric)
    if not history:
        return {}
    best = history[best_index([score for _, _, score in history], greater_is_better)]
    return {"best_epoch": best[0], "best_step": best[1], "best_score": best[2], "epochs_run": history[-1][0],
            "steps_run": history[-1][1], "evaluations": len(history)}


class StopWhenConvergedCallback(TrainerCallback):
    """Ends training at the first evaluation where :func:`converged` holds for ``args.metric_for_best_model``."""

    def __init__(self, fraction: float = CONVERGENCE_FRACTION, min_evaluations: int = MIN_EVALUATIONS,
                 min_improvement: float = 0.0):
        if not 0 < fraction < 1:
            raise ValueError(f"fraction must be in (0, 1), got {fraction}")
        if not min_improvement >= 0:
            raise ValueError(f"min_improvement must be >= 0, got {min_improvement}")
        self.fraction, self.min_evaluations, self.min_improvement = fraction, min_evaluations, min_improvement
        self.stopped_at: float | None = None

    def on_evaluate(self, args, state, control, **kwargs):
        metric = args.metric_for_best_model
        if metric is None:
            return
        metric = metric[len("eval_"):] if metric.startswith("eval_") else metric
        scores = [score for _, _, score in selection_history(state.log_history, metric)]
        if converged(scores, args.greater_is_better is not False, self.fraction, self.min_evaluations,
                     self.min_improvement):
            control.should_training_stop = True
            self.stopped_at = float(state.epoch or 0.0)
