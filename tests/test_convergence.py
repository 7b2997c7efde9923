"""td_detr.convergence: a run stops once the selection metric has not improved for a fifth of it."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from transformers import TrainerControl, TrainerState

from td_detr.convergence import StopWhenConvergedCallback, best_index, convergence_report, converged


def _history(scores, key="eval_MR-full-mAP"):
    rows = [{"epoch": float(i + 1), "step": 10 * (i + 1), key: s} for i, s in enumerate(scores)]
    return [*rows, {"epoch": 1.0, "step": 10, "loss": 3.0}]  # a training log line is ignored


def test_rule_is_a_fifth_of_the_run_since_the_best():
    rising = [float(i) for i in range(12)]
    assert not converged(rising)
    # best at evaluation 8 of 10: 2 evaluations without improvement = a fifth of 10
    assert converged([1, 2, 3, 4, 5, 6, 7, 9, 8, 8])
    assert not converged([1, 2, 3, 4, 5, 6, 7, 8, 9, 8, 8][:10])  # best at 9 of 10: 1 < 2
    # best at 10 of 13: 3 >= 2.6 stops; best at 11 of 13: 2 < 2.6 goes on
    assert converged([0] * 9 + [5, 4, 4, 4])
    assert not converged([0] * 10 + [5, 4, 4])
    # a tie is no improvement; fewer than min_evaluations never stops
    assert best_index([1, 3, 3, 2]) == 1
    assert not converged([5, 1, 1, 1, 1, 1, 1, 1, 1])
    assert converged([5, 1, 1], min_evaluations=3)
    assert converged([1, 5, 9, 9], greater_is_better=False, min_evaluations=4)  # lower is better: best is the first


def test_callback_stops_training_and_report_reads_the_history():
    callback = StopWhenConvergedCallback()
    args = SimpleNamespace(metric_for_best_model="MR-full-mAP", greater_is_better=True)
    state, control = TrainerState(), TrainerControl()
    scores = [1, 2, 3, 4, 5, 6, 7, 9, 8, 8]
    for n in range(1, len(scores) + 1):
        state.log_history, state.epoch = _history(scores[:n]), float(n)
        callback.on_evaluate(args, state, control)
        assert control.should_training_stop == (n == len(scores))
    assert callback.stopped_at == 10.0
    report = convergence_report(state.log_history, "MR-full-mAP")
    assert report == {"best_epoch": 8.0, "best_step": 80, "best_score": 9.0, "epochs_run": 10.0, "steps_run": 100,
                      "evaluations": 10}
    # the re-scoring of the kept model after training (same step) is not a new evaluation
    state.log_history.append({"epoch": 10.0, "step": 100, "eval_MR-full-mAP": 9.0})
    assert convergence_report(state.log_history, "MR-full-mAP")["evaluations"] == 10


def test_fraction_must_be_a_proper_share():
    with pytest.raises(ValueError):
        StopWhenConvergedCallback(fraction=1.0)


def test_min_improvement_ignores_gains_below_it_and_keeps_the_true_best_in_the_report():
    # after evaluation 5 every gain is 0.1: without a threshold the run never stops, with 0.5 it stops at 13
    scores = [1.0, 2.0, 3.0, 4.0, 5.0] + [5.0 + 0.1 * i for i in range(1, 11)]
    assert best_index(scores) == len(scores) - 1 and best_index(scores[:7], min_improvement=0.5) == 4
    assert best_index(scores, min_improvement=0.5) == 10  # gains add up: 5.6 beats the counted 5.0 by 0.6
    assert not any(converged(scores[:n], min_evaluations=5) for n in range(1, len(scores) + 1))
    stops = [n for n in range(1, len(scores) + 1) if converged(scores[:n], min_evaluations=5, min_improvement=0.5)]
    assert stops[0] == 7  # best (by more than 0.5) at 5 of 7: 2 >= 1.4
    assert best_index([3, 1, 2.6, 2.4], greater_is_better=False, min_improvement=0.5) == 1
    callback = StopWhenConvergedCallback(min_evaluations=5, min_improvement=0.5)
    args = SimpleNamespace(metric_for_best_model="eval_MR-full-mAP", greater_is_better=True)
    state, control = TrainerState(), TrainerControl()
    for n in range(1, 8):
        state.log_history, state.epoch = _history(scores[:n]), float(n)
        callback.on_evaluate(args, state, control)
    assert control.should_training_stop and callback.stopped_at == 7.0
    assert convergence_report(state.log_history, "MR-full-mAP")["best_epoch"] == 7.0  # the true best, 5.2
    with pytest.raises(ValueError):
        StopWhenConvergedCallback(min_improvement=-0.1)


def test_train_builds_the_stop_rule_from_its_flags():
    from td_detr.commands.train import stop_when_converged

    rule = stop_when_converged(SimpleNamespace(min_evaluations=None, min_improvement=None))
    assert (rule.min_evaluations, rule.min_improvement) == (StopWhenConvergedCallback().min_evaluations, 0.0)
    rule = stop_when_converged(SimpleNamespace(min_evaluations=21, min_improvement=0.5))
    assert (rule.min_evaluations, rule.min_improvement) == (21, 0.5)
