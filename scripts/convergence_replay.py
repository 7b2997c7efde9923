"""Replay the until-converged stop rule with other settings over finished runs' logged evaluations.

``scripts/ablate.py`` keeps each run's `td-detr train` output in ``RESULTS/work/<setting>__seed<n>.log``: one line per
evaluation round (epoch, loss, R1@0.5, R1@0.7, mAP, best so far; ``td_detr.training_report``). This reads the
selection metric (mAP, the last value before "best") of every round and asks ``td_detr.convergence.converged`` where a
run would have stopped under ``--min-improvement`` / ``--min-evaluations`` / ``--fraction``. It also prints the best
score up to that round and how much the run gained in its last third.

Only finished runs are read: those with a record in ``RESULTS/runs``. A replay can end a run only where its log
still runs. "no stop" means the rule would not have ended the run within its logged rounds. A higher threshold never
stops a run later than a lower one.

    python scripts/convergence_replay.py runs/ablation --min-improvement 0.5 --min-evaluations 21
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from td_detr.convergence import CONVERGENCE_FRACTION, converged

# "  epoch     loss   R1@0.5   R1@0.7      mAP   best (epoch E)": the selection mAP is the fifth number
ROUND = re.compile(r"^\s*([0-9.]+)\s+[0-9.na]+\s+[0-9.]+\s+[0-9.]+\s+([0-9.]+)\s+[0-9.]+ \(epoch [0-9.]+\)\s*$")


def logged_scores(log: Path) -> list[float]:
    """The selection score of every evaluation round in a train log (progress bars' carriage returns split lines)."""
    lines = log.read_text(errors="replace").replace("\r", "\n").splitlines()
    return [float(match.group(2)) for line in lines if (match := ROUND.match(line))]


def replay(scores: list[float], fraction: float, min_evaluations: int, min_improvement: float) -> int | None:
    """The round (1-based) the rule stops at, or None when the logged rounds end first."""
    for rounds in range(1, len(scores) + 1):
        if converged(scores[:rounds], fraction=fraction, min_evaluations=min_evaluations,
                     min_improvement=min_improvement):
            return rounds
    return None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results_dir", type=Path, help="an ablate.py results folder (its work/*.log are read)")
    parser.add_argument("--min-improvement", type=float, default=0.0)
    parser.add_argument("--min-evaluations", type=int, default=21)
    parser.add_argument("--fraction", type=float, default=CONVERGENCE_FRACTION)
    args = parser.parse_args(argv)
    logs = sorted((args.results_dir / "work").glob("*.log"))
    runs = {log.stem: scores for log in logs
            if (args.results_dir / "runs" / f"{log.stem}.json").is_file() and (scores := logged_scores(log))}
    if not runs:
        print(f"{args.results_dir}: no finished run with a train log in work/", file=sys.stderr)
        return 2
    print(f"rule: no gain above {args.min_improvement:g} for {args.fraction:g} of the run, not before round "
          f"{args.min_evaluations}")
    print(f"{'run':34s} {'logged':>6s} {'replay':>8s} {'best logged':>11s} {'best replay':>11s} {'last-third gain':>15s}")
    logged_total = replayed_total = 0
    for name, scores in runs.items():
        stop = replay(scores, args.fraction, args.min_evaluations, args.min_improvement)
        end = stop or len(scores)
        last_third_gain = max(scores) - max(scores[: max(1, (2 * len(scores)) // 3)])
        logged_total, replayed_total = logged_total + len(scores), replayed_total + end
        print(f"{name:34s} {len(scores):6d} {stop if stop else 'no stop':>8} {max(scores):11.2f} "
              f"{max(scores[:end]):11.2f} {last_third_gain:15.2f}")
    print(f"rounds: {logged_total} logged, {replayed_total} under the replayed rule")
    return 0


if __name__ == "__main__":
    sys.exit(main())
