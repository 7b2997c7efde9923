"""Ablations of TD-DETR on a spurious synthetic data set (paper Table 3, Tables S1 / S2 / S4, the "w/ TD-DETR"
rows), several seeds each, mean ± std.

Data: ``td-detr make-synthetic DATA --preset spurious_hard`` (train: a cue brackets every moment; the action is a
much fainter signal than the cue; the earlier plan used ``--preset spurious``). Every run trains with
``td-detr train`` (best epoch chosen on ``validation_iid``, the in-distribution split: the shifted split is never
used for selection; the study plan trains ``--until-converged``: until the selection metric has not improved for a
fifth of the run, at most ``epochs``), then reports

* ``iid``: R1@0.5 / R1@0.7 / mAP on ``validation_iid`` (cue next to the moment, as in training);
* ``shifted``: the same on ``validation`` (the cue brackets a decoy far from the moment: a model that learned the
  shortcut predicts the decoy);
* ``spurious``: Spurious R1@0.5 / R1@0.7 / mAP of ``td-detr spurious-eval`` on ``validation_iid`` (moments erased,
  targets kept; lower is better), and ``dynamic_context``: its dynamic-context split (paper S4.2).

Settings (the synthetic preset model: hidden 64, 2/2/2 layers, unless said otherwise):

* components: baseline (no synthesis, no dynamics), + synthesis with random pairing, + synthesis with similarity
  pairing, + dynamics only, full TD-DETR (α 0.7, β 0.7, similarity pairing);
* α ∈ {0.3, 0.5, 0.7, 0.9} and β ∈ {0.1, 0.3, 0.5, 0.7, 0.9} on the full model (0.7 is the full run itself);
* transfer: the QD-DETR baseline as released (span / gIoU weights 10 / 1 instead of TD-DETR's 1 / 10, no dynamics,
  no synthesis), the same with the synthesizer alone, and with both strategies;
* main: baseline vs full TD-DETR at equal optimizer steps (``baseline`` vs ``full``) and at equal samples seen
  (``baseline_equal_samples``: 1.5x the steps per round, as many rows as the full model's B originals + B/2
  synthesized rows a step); width_256: the same three at QD-DETR's width (hidden 256, 8 heads, FFN 1024, 2/2/2
  layers: ``baseline_256``, ``baseline_256_equal_samples``, ``full_256``); ``qd_detr_equal_samples``: QD-DETR on
  as many rows as QD-DETR w/ TD-DETR. An equal-samples setting's ratio of steps is computed from the two training
  configs (rows per optimizer step of the synthesizer, :func:`samples_per_round`), not typed.

Each run is one worker process running the ``td-detr`` commands (``OMP_NUM_THREADS`` = ``--threads``; ``--jobs`` at a time)
that writes ``RESULTS/runs/<setting>__seed<S>.json`` atomically when it is done; its predictions on ``validation``
and ``validation_iid`` are kept in ``RESULTS/predictions``. A rerun skips finished runs and restarts an interrupted
one from scratch (its work folder is wiped). A run's record holds the metrics above, the per-query AP of the iid,
shifted and Spurious splits (``per_query_ap``: 100 × their mean is the split's mAP), the optimizer steps, samples
(rows, synthesized ones included) seen, best epoch, epochs and steps run (``convergence``) and the wall-clock
seconds of each command.

``results.json`` (the runs of the invocation), ``summary.json`` and ``summary.md`` are rewritten at the end;
``--summarize-only`` rewrites them from every run record in ``RESULTS/runs`` (so seeds, settings or a longer cap
added by later invocations join the tables; the run-length table gives each run's cap). The summary holds mean ± std per setting (sample std over seeds), the run
lengths, and every claim of :data:`CLAIMS` (full vs baseline, each component vs the baseline, each α / β vs the full
default, each strategy vs QD-DETR) as the mean paired difference (by seed) of shifted mAP, the iid − shifted gap,
Spurious mAP and iid mAP and the share of the baseline's lost shifted mAP kept, each with a 95 % hierarchical
bootstrap interval over seeds and queries (``ablation_statistics.py``; a cell reads "not shown" unless the interval
excludes 0), at equal steps and, where the equal-samples runs exist, at equal samples seen, with each setting's
training time beside it.

    python scripts/ablate.py --jobs 2 --threads 1 --only baseline,baseline_equal_samples,full  # main comparison
    python scripts/ablate.py --jobs 2 --threads 1   # the whole study: 5 seeds x 20 settings, until converged
    python scripts/ablate.py --plan earlier --jobs 2 --threads 1   # the earlier study: 3 seeds x 15, 12 epochs
    python scripts/ablate.py --quick --jobs 2 --threads 1   # 1 seed x 4 epochs
    python scripts/ablate.py --dry-run --results-dir /tmp/abl   # tiny data / model, 2 steps per run
    python scripts/ablate.py --summarize-only --results-dir runs/ablation   # the tables and claims again
"""

from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import hashlib
import json
import math
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

from td_detr.convergence import convergence_report
from td_detr.registry import DATA_SETS

REPO = Path(__file__).resolve().parents[1]
if str(REPO / "scripts") not in sys.path:  # the statistics module beside this script, when loaded from a test
    sys.path.insert(0, str(REPO / "scripts"))
import ablation_statistics as statistics  # noqa: E402
SPLITS = ("iid", "shifted", "spurious", "dynamic_context")
MAIN_KEYS = ("MR-full-R1@0.5", "MR-full-R1@0.7", "MR-full-mAP")
SPURIOUS_KEYS = ("Spurious-R1@0.5", "Spurious-R1@0.7", "Spurious-mAP")
SPLIT_KEYS = {"iid": MAIN_KEYS, "shifted": MAIN_KEYS, "spurious": SPURIOUS_KEYS, "dynamic_context": MAIN_KEYS}


@dataclasses.dataclass(frozen=True)
class Setting:
    """One trained configuration: `flags` go to `td-detr train`; `architecture` picks the loss / matcher weights and
    `size` the model width (:data:`MODEL_SIZES`). `samples_like`: an equal-samples run, whose evaluation rounds (the
    unit of the epoch cap and of the convergence rule) each cover as many rows as a round of that setting
    (:func:`samples_per_round`: the ratio of rows per optimizer step, from the two training configs)."""

    key: str
    label: str
    flags: tuple = ()
    architecture: str = "td_detr"  # "td_detr": the synthetic preset model; "qd_detr": QD-DETR loss / matcher weights
    size: str = "small"
    samples_like: str | None = None


NO_STRATEGY = ("--no-synthesis", "--no-dynamics")
SETTINGS = {s.key: s for s in (
    Setting("baseline", "baseline (no synthesis, no dynamics)", NO_STRATEGY),
    Setting("synthesis_random", "+ synthesis (random pairing)", ("--no-dynamics", "--pairing", "random")),
    Setting("synthesis_similarity", "+ synthesis (similarity pairing)", ("--no-dynamics", "--pairing", "similarity")),
    Setting("dynamics_only", "+ dynamics only", ("--no-synthesis",)),
    Setting("full", "full TD-DETR", ()),
    *(Setting(f"alpha_{a}", f"full, α={a}", ("--alpha", str(a))) for a in (0.3, 0.5, 0.9)),
    *(Setting(f"beta_{b}", f"full, β={b}", ("--beta", str(b))) for b in (0.1, 0.3, 0.5, 0.9)),
    Setting("qd_detr", "QD-DETR (as released)", NO_STRATEGY, "qd_detr"),
    Setting("qd_detr_synthesis", "QD-DETR w/ synthesizer", ("--no-dynamics", "--pairing", "similarity"), "qd_detr"),
    Setting("qd_detr_td", "QD-DETR w/ TD-DETR (synthesizer + dynamics)", (), "qd_detr"),
    Setting("qd_detr_equal_samples", "QD-DETR, equal samples (1.5x steps)", NO_STRATEGY, "qd_detr",
            samples_like="qd_detr_td"),
    # The main comparison, baseline vs full: equal optimizer steps (baseline vs full) and equal samples seen
    # (baseline_equal_samples: 1.5x the baseline's steps per round, as many rows as the full model sees); the same
    # at QD-DETR's width (hidden 256).
    Setting("baseline_equal_samples", "baseline, equal samples (1.5x steps)", NO_STRATEGY, samples_like="full"),
    Setting("baseline_256", "baseline, hidden 256", NO_STRATEGY, size="qd_detr_width"),
    Setting("baseline_256_equal_samples", "baseline, hidden 256, equal samples (1.5x steps)", NO_STRATEGY,
            size="qd_detr_width", samples_like="full_256"),
    Setting("full_256", "full TD-DETR, hidden 256", (), size="qd_detr_width"),
)}

# Group -> [(row label, setting key, x value or None)]; α / β = 0.7 are the full run itself (the defaults).
GROUPS = {
    "components": [(SETTINGS[k].label, k, None) for k in
                   ("baseline", "synthesis_random", "synthesis_similarity", "dynamics_only", "full")],
    "alpha": [(f"α={a}", "full" if a == 0.7 else f"alpha_{a}", a) for a in (0.3, 0.5, 0.7, 0.9)],
    "beta": [(f"β={b}", "full" if b == 0.7 else f"beta_{b}", b) for b in (0.1, 0.3, 0.5, 0.7, 0.9)],
    "transfer": [(SETTINGS[k].label, k, None)
                 for k in ("qd_detr", "qd_detr_equal_samples", "qd_detr_synthesis", "qd_detr_td")],
    "main": [(SETTINGS[k].label, k, None) for k in ("baseline", "baseline_equal_samples", "full")],
    "width_256": [(SETTINGS[k].label, k, None) for k in ("baseline_256", "baseline_256_equal_samples", "full_256")],
}

# What the study claims: setting against reference, each with a bootstrap interval (ablation_statistics); the
# equal-samples comparisons are found from the records.
Claim = statistics.Claim
CLAIMS = [
    Claim("main", "full TD-DETR vs baseline", "full", "baseline"),
    Claim("width_256", "full TD-DETR vs baseline, hidden 256", "full_256", "baseline_256"),
    *(Claim("components", f"{SETTINGS[k].label} vs baseline", k, "baseline")
      for k in ("synthesis_random", "synthesis_similarity", "dynamics_only")),
    Claim("components", "similarity vs random pairing", "synthesis_similarity", "synthesis_random"),
    Claim("components", "dynamics on top of the synthesizer (full vs + synthesis)", "full", "synthesis_similarity"),
    *(Claim(sweep, f"{symbol}={x} vs {symbol}=0.7 (full)", key, "full")
      for sweep, symbol in (("alpha", "α"), ("beta", "β")) for _, key, x in GROUPS[sweep] if key != "full"),
    *(Claim("transfer", f"{SETTINGS[k].label} vs QD-DETR", k, "qd_detr") for k in ("qd_detr_synthesis", "qd_detr_td")),
]


@dataclasses.dataclass(frozen=True)
class Plan:
    """Sizes of one ablation: data (preset and training queries), model sizes, optimisation, seeds. With
    `until_converged`, `epochs` is the cap and a run stops once the selection metric has not improved for a fifth of
    its evaluation rounds (``td-detr train --until-converged``, td_detr.convergence)."""

    name: str
    seeds: tuple
    epochs: float | None
    max_steps: int | None
    batch_size: int
    data_size: int
    sizes: dict  # size name -> TDDetrConfig keywords of the architecture (feature sizes come from the data)
    in_process: bool = False
    data_preset: str = "spurious"
    until_converged: bool = False
    learning_rates: dict = dataclasses.field(default_factory=dict)  # size name -> lr (default: the preset's)
    lr_drop_epochs: int | None = None  # None: the synthetic preset's
    min_evaluations: int | None = None  # with until_converged: the first round the rule may stop (None: train's)


# The synthetic preset model (td_detr.registry), recorded in every run's spec; QD-DETR's width on top of it.
SYNTHETIC_MODEL = dict(DATA_SETS["synthetic"].model)
QD_DETR_WIDTH_MODEL = {**SYNTHETIC_MODEL, "hidden_size": 256, "num_attention_heads": 8, "ffn_dim": 1024}
MODEL_SIZES = {"small": SYNTHETIC_MODEL, "qd_detr_width": QD_DETR_WIDTH_MODEL}
TINY_MODEL = dict(hidden_size=16, num_attention_heads=2, ffn_dim=32, t2v_layers=1, encoder_layers=1,
                  decoder_layers=1, num_queries=4, input_dropout=0.1)
PLANS = {
    # The study of issue 19: the spurious_hard preset (320 training queries = 10 batches of 32 a round, 160 per
    # evaluation split), trained until converged (cap 40 rounds; the learning rate drops x0.1 after round 16, which a
    # 1.5x round scales exactly; the rule may stop a run from round 21, 5 rounds past the drop). At cap 30 the
    # baseline's selection metric was still rising at the cap (seed 0: best epoch 30 of 30).
    "study": Plan("study", (0, 1, 2, 3, 4), epochs=40, max_steps=None, batch_size=32, data_size=320,
                  sizes=MODEL_SIZES, data_preset="spurious_hard", until_converged=True,
                  learning_rates={"qd_detr_width": 5e-4}, lr_drop_epochs=16, min_evaluations=21),
    # The earlier study (docs/RESULTS.md, "earlier preset"): 640 training queries = 20 batches, 12 epochs.
    "earlier": Plan("earlier", (0, 1, 2), epochs=12, max_steps=None, batch_size=32, data_size=640, sizes=MODEL_SIZES),
    "quick": Plan("quick", (0,), epochs=4, max_steps=None, batch_size=32, data_size=320, sizes=MODEL_SIZES,
                  data_preset="spurious_hard"),
    "dry_run": Plan("dry_run", (0,), epochs=None, max_steps=2, batch_size=8, data_size=16,
                    sizes={"small": TINY_MODEL, "qd_detr_width": {**TINY_MODEL, "hidden_size": 32}}, in_process=True,
                    data_preset="spurious_hard"),
}
QD_DETR_WEIGHTS = dict(matcher_span_cost=10.0, matcher_giou_cost=1.0, span_loss_weight=10.0, giou_loss_weight=1.0)


# ------------------------------------------------------------------------------------------------------------------
# One run
# ------------------------------------------------------------------------------------------------------------------


def run_name(key: str, seed: int) -> str:
    return f"{key}__seed{seed}"


def run_spec(setting: Setting, seed: int, plan: Plan, results_dir: Path) -> dict:
    """Everything a worker needs, JSON-serialisable; `fingerprint` changes when any of it does."""
    data = results_dir / "data"
    config = results_dir / "configs" / f"{setting.architecture}_{setting.size}.json"
    work = results_dir / "work" / run_name(setting.key, seed)
    common = ["--dataset", "synthetic", "--data-dir", str(data), "--cache-dir", str(results_dir / "cache")]
    train = ["train", *common, "--eval-split", "validation_iid", "--config", str(config), "--seed", str(seed),
             "--batch-size", str(plan.batch_size), "--output-dir", str(work / "model"), *setting.flags,
             *schedule_flags(setting, plan)]
    evaluate = ["evaluate", "--model", str(work / "model"), *common, "--eval-split", "validation",
                "--output-dir", str(work / "shifted")]
    spurious = ["spurious-eval", "--model", str(work / "model"), "--dataset", "synthetic", "--data-dir", str(data),
                "--cache-dir", str(work / "spurious-cache"), "--eval-split", "validation_iid",
                "--output-dir", str(work / "spurious")]
    spec = {
        "key": setting.key, "label": setting.label, "seed": seed, "plan": plan.name, "flags": list(setting.flags),
        "architecture": setting.architecture, "size": setting.size, "model": _architecture(setting, plan),
        "epochs": plan.epochs, "max_steps": plan.max_steps, "batch_size": plan.batch_size,
        "data_size": plan.data_size, "data_preset": plan.data_preset, "until_converged": plan.until_converged,
        "samples_per_round": samples_per_round(setting, plan), "rows_per_batch": rows_per_batch(setting, plan),
        "commands": [train, evaluate, spurious],
    }
    # Paths are left out of the fingerprint so a moved results folder still resumes.
    stable = {k: v for k, v in spec.items() if k != "commands"}
    stable["schedule"] = schedule_flags(setting, plan)
    spec["fingerprint"] = hashlib.sha256(json.dumps(stable, sort_keys=True).encode()).hexdigest()[:16]
    spec["work_dir"], spec["result_file"] = str(work), str(results_dir / "runs" / f"{run_name(setting.key, seed)}.json")
    spec["data_dir"] = str(data)
    return spec


def synthesizer(setting: Setting, plan: Plan):
    """The video synthesizer a run of `setting` trains with: its architecture config's, off with --no-synthesis
    (the other flags do not change the rows of a step; execute_run checks this against the trained config)."""
    from td_detr import TDDetrConfig
    from td_detr.data.synthesis import VideoSynthesizer

    config = TDDetrConfig(**_architecture(setting, plan))
    if "--no-synthesis" in setting.flags:
        config.synthesis_pairing = "none"
    return VideoSynthesizer.from_config(config)


def rows_per_batch(setting: Setting, plan: Plan) -> int:
    """Rows one optimizer step of `setting` trains on (a batch of the plan's size plus the synthesized rows)."""
    return synthesizer(setting, plan).rows_per_batch(plan.batch_size)


def samples_per_round(setting: Setting, plan: Plan) -> float:
    """Passes over the training rows per evaluation round: 1, or for an equal-samples setting the ratio of rows per
    step of the setting it matches to its own (1.5 against a synthesizer that keeps the originals)."""
    if setting.samples_like is None:
        return 1.0
    return rows_per_batch(SETTINGS[setting.samples_like], plan) / rows_per_batch(setting, plan)


def schedule_flags(setting: Setting, plan: Plan) -> list[str]:
    """Run length, learning rate and convergence flags of `td-detr train`. A setting with :func:`samples_per_round` r
    evaluates every r·(steps per epoch) steps and caps, and drops the learning rate, at r times the plan's steps."""
    flags = []
    rounds = samples_per_round(setting, plan)
    lr = plan.learning_rates.get(setting.size)
    if lr is not None:
        flags += ["--lr", str(lr)]
    if plan.until_converged:
        flags.append("--until-converged")
        if plan.min_evaluations:
            flags += ["--min-evaluations", str(plan.min_evaluations)]
    if plan.max_steps:
        return flags + ["--max-steps", str(round(plan.max_steps * rounds))]
    lr_drop = plan.lr_drop_epochs or DATA_SETS["synthetic"].training.lr_drop_epochs
    if rounds == 1.0:
        return flags + ["--epochs", str(plan.epochs), "--lr-drop", str(lr_drop)]
    steps_per_round = round(rounds * math.ceil(plan.data_size / plan.batch_size))
    # --lr-drop counts epochs of ceil(N/B) steps: the drop comes at r x the plan's step.
    return flags + ["--save-steps", str(steps_per_round), "--max-steps", str(round(plan.epochs * steps_per_round)),
                    "--lr-drop", str(round(lr_drop * rounds))]


def _architecture(setting: Setting, plan: Plan) -> dict:
    return {**plan.sizes[setting.size], **(QD_DETR_WEIGHTS if setting.architecture == "qd_detr" else {})}


def command_line(argv: list[str]) -> str:
    return "td-detr " + " ".join(argv)


def thread_environment(threads: int) -> dict:
    return {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
            "TOKENIZERS_PARALLELISM": "false"}


def execute_run(spec: dict, threads: int) -> dict:
    """Train, evaluate on the shifted split and run the spurious evaluation (each a `td-detr` command in its own
    process, as a user runs them); returns the result."""
    work = Path(spec["work_dir"])
    if work.exists():  # a killed run left a partial folder: start it over cleanly
        shutil.rmtree(work)
    work.mkdir(parents=True)
    timings, start = {}, time.perf_counter()
    for name, argv in zip(("train", "evaluate", "spurious_eval"), spec["commands"]):
        began = time.perf_counter()
        code = subprocess.run([sys.executable, "-m", "td_detr", *argv], env=thread_environment(threads)).returncode
        if code != 0:
            raise RuntimeError(f"{command_line(argv)} exited with {code}")
        timings[name] = round(time.perf_counter() - began, 2)
    model_dir = work / "model"
    spurious = json.loads((work / "spurious" / "spurious_metrics.json").read_text())
    shifted = json.loads((work / "shifted" / "metrics.json").read_text())["brief"]
    trainer_state = _trainer_state(model_dir / "checkpoints")
    data = Path(spec["data_dir"])
    trained = trained_synthesizer(model_dir)
    if trained.rows_per_batch(spec["batch_size"]) != spec["rows_per_batch"]:  # the equal-samples budget assumed it
        raise RuntimeError(f"{work.name}: the trained config makes {trained.rows_per_batch(spec['batch_size'])} rows a "
                           f"step, not the {spec['rows_per_batch']} the plan computed from the setting")
    result = {
        **{k: spec.get(k) for k in ("key", "label", "seed", "plan", "flags", "architecture", "size", "model", "epochs",
                                    "max_steps", "batch_size", "data_size", "data_preset", "until_converged",
                                    "samples_per_round", "rows_per_batch", "fingerprint")},
        "commands": [command_line(argv) for argv in spec["commands"]],
        "metrics": {
            "iid": _pick(spurious["standard"], MAIN_KEYS),
            "shifted": _pick(shifted, MAIN_KEYS),
            "spurious": _pick(spurious["masked"], SPURIOUS_KEYS),
            "dynamic_context": _pick(spurious["dynamic_context"], MAIN_KEYS),
        },
        # The AP of every query that each split's mAP averages (what the bootstrap of --summarize-only resamples).
        "per_query_ap": {
            "iid": per_query_ap(work / "spurious" / "predictions.jsonl", data / "validation_iid.jsonl"),
            "shifted": per_query_ap(work / "shifted" / "predictions.jsonl", data / "validation.jsonl"),
            "spurious": per_query_ap(work / "spurious" / "masked" / "predictions.jsonl", spurious["splits"]["masked"]),
        },
        "train_steps": trainer_state.get("global_step"),
        # Rows the optimizer steps trained on, synthesized ones included.
        "samples_seen": samples_seen(trainer_state.get("global_step") or 0,
                                     _count_lines(data / "train.jsonl") * DATA_SETS["synthetic"].training.passes_per_epoch,
                                     spec["batch_size"], trained.rows_per_batch),
        "best_checkpoint": Path(trainer_state.get("best_model_checkpoint") or "").name or None,
        # best_epoch / epochs_run count evaluation rounds' epochs; steps_run the optimizer steps actually taken.
        "convergence": convergence_report(trainer_state.get("log_history", []), "MR-full-mAP"),
        "seconds": {**timings, "total": round(time.perf_counter() - start, 2)},
        "threads": threads,
    }
    # Keep the prediction files (for plots), drop weights, checkpoints and derived feature splits.
    keep = Path(spec["result_file"]).parent.parent / "predictions"
    keep.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(work / "shifted" / "predictions.jsonl", keep / f"{run_name(spec['key'], spec['seed'])}__validation.jsonl")
    shutil.copyfile(model_dir / "predictions.jsonl", keep / f"{run_name(spec['key'], spec['seed'])}__validation_iid.jsonl")
    write_json_atomic(Path(spec["result_file"]), result)
    shutil.rmtree(work)
    return result


def _pick(brief: dict, keys) -> dict:
    return {key: float(brief[key]) for key in keys}


def per_query_ap(predictions: Path, annotations: Path) -> dict[str, float]:
    """qid -> AP averaged over the mAP IoU thresholds (the metrics module's function; mean × 100 = MR-full-mAP)."""
    from td_detr.metrics import per_query_average_precision, read_jsonl

    values = per_query_average_precision(read_jsonl(predictions), read_jsonl(annotations))
    return {str(qid): ap for qid, ap in values.items()}


def _count_lines(path: Path) -> int:
    return sum(1 for line in path.read_text().splitlines() if line.strip())


def trained_synthesizer(model_dir: Path):
    """The video synthesizer of the config a run saved."""
    from td_detr import TDDetrConfig
    from td_detr.data.synthesis import VideoSynthesizer

    return VideoSynthesizer.from_config(TDDetrConfig.from_pretrained(model_dir))


def samples_seen(steps: int, rows_per_epoch: int, batch_size: int, rows_of_batch) -> int:
    """Rows the first `steps` optimizer steps train on: each epoch is ceil(rows_per_epoch / batch_size) batches, the
    last one short; a batch of b rows becomes rows_of_batch(b) rows."""
    full, rest = divmod(rows_per_epoch, batch_size)
    epoch = [batch_size] * full + ([rest] if rest else [])
    epochs, left = divmod(steps, len(epoch))
    return epochs * sum(map(rows_of_batch, epoch)) + sum(map(rows_of_batch, epoch[:left]))


def _trainer_state(checkpoints: Path) -> dict:
    states = sorted(checkpoints.glob("checkpoint-*/trainer_state.json"), key=lambda p: int(p.parent.name.split("-")[-1]))
    return json.loads(states[-1].read_text()) if states else {}


def write_json_atomic(path: Path, payload) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{threading.get_ident()}")  # unique per --jobs thread
    tmp.write_text(json.dumps(payload, indent=2) + "\n")
    os.replace(tmp, path)


def load_finished(spec: dict) -> dict | None:
    """The stored result of a run when it finished with the same settings, else None."""
    path = Path(spec["result_file"])
    try:
        result = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return result if result.get("fingerprint") == spec["fingerprint"] else None


def side_files(spec: dict) -> tuple[Path, Path]:
    """(spec file, log file) of a subprocess run, beside its work folder."""
    work = Path(spec["work_dir"])
    # Not with_suffix: "alpha_0.5__seed0" would lose ".5__seed0" and collide with the other α runs.
    return work.with_name(work.name + ".spec.json"), work.with_name(work.name + ".log")


def run_in_subprocess(spec: dict, threads: int) -> dict:
    """One run in a fresh interpreter (nothing leaks between runs); its output goes to work/<run>.log."""
    spec_file, log = side_files(spec)
    write_json_atomic(spec_file, spec)
    with open(log, "w") as handle:
        code = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--worker", str(spec_file),
                               "--threads", str(threads)], stdout=handle, stderr=subprocess.STDOUT,
                              env=thread_environment(threads)).returncode
    if code != 0:
        raise RuntimeError(f"run {Path(spec['work_dir']).name} failed (exit {code}); see {log}")
    spec_file.unlink()
    return json.loads(Path(spec["result_file"]).read_text())


# ------------------------------------------------------------------------------------------------------------------
# Aggregation and tables
# ------------------------------------------------------------------------------------------------------------------


def mean_std(values: list[float]) -> dict:
    """Mean and sample standard deviation (ddof 1; 0 for a single value)."""
    n = len(values)
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    return {"mean": round(mean, 3), "std": round(std, 3), "values": values}


def summarize(results: list[dict], meta: dict, resamples: int = statistics.RESAMPLES) -> dict:
    """summary.json: per setting, mean ± std over seeds of every reported metric; the groups as row lists; every
    claim with its paired bootstrap interval at each fairness axis; each setting's cost."""
    by_key: dict[str, list[dict]] = {}
    for result in results:
        by_key.setdefault(result["key"], []).append(result)
    settings = {}
    for key, runs in by_key.items():
        runs.sort(key=lambda r: r["seed"])
        settings[key] = {
            "label": SETTINGS[key].label,
            "flags": runs[0]["flags"],
            "architecture": runs[0]["architecture"],
            "seeds": [r["seed"] for r in runs],
            "train_steps": runs[0]["train_steps"],
            # Per seed (same order as `seeds`): the epoch the selection metric peaked, the epochs and steps run.
            "convergence": {**{field: [r.get("convergence", {}).get(field) for r in runs]
                               for field in ("best_epoch", "epochs_run", "steps_run")},
                            "cap": [r.get("epochs") for r in runs]},
            "seconds_per_run": round(sum(r["seconds"]["total"] for r in runs) / len(runs), 1),
            "metrics": {split: {metric: mean_std([r["metrics"][split][metric] for r in runs])
                                for metric in SPLIT_KEYS[split]} for split in SPLITS},
            # Per seed, then mean ± std: how much mAP the model loses when the cue moves off the moment.
            "shortcut_gap": {"MR-full-mAP": mean_std([round(r["metrics"]["iid"]["MR-full-mAP"]
                                                            - r["metrics"]["shifted"]["MR-full-mAP"], 2) for r in runs])},
        }
    groups = {name: [{"label": label, "key": key, "x": x} for label, key, x in rows if key in settings]
              for name, rows in GROUPS.items()}
    return {"meta": meta, "settings": settings, "groups": groups,
            "statistics": {"resamples": resamples, "rng_seed": statistics.RNG_SEED, "level": statistics.LEVEL},
            "claims": statistics.claims(results, CLAIMS, resamples),
            "costs": statistics.costs(statistics.runs_by_key(results))}


def _cell(stat: dict) -> str:
    if len(stat["values"]) == 1:  # one seed: no spread to report
        return f"{stat['mean']:.2f}"
    return f"{stat['mean']:.2f} ± {stat['std']:.2f}"


def markdown_tables(summary: dict) -> str:
    """One markdown table per group: iid, shifted, Spurious (lower is better) and dynamic-context R1@0.5 / R1@0.7 /
    mAP, and the iid − shifted mAP gap."""
    titles = {"components": "Components (Table 3-style)", "alpha": "Synthesizer α (Table S1)",
              "beta": "Dynamics β (Table S2)", "transfer": "Strategies on the QD-DETR baseline ('w/ TD-DETR')",
              "main": "Main comparison: baseline vs full at equal steps and at equal samples (hidden 64)",
              "width_256": "Main comparison at QD-DETR's width (hidden 256, 2/2/2 layers)"}
    header = ("| setting | iid R1@0.5 | iid R1@0.7 | iid mAP | shifted R1@0.5 | shifted R1@0.7 | shifted mAP "
              "| Spurious R1@0.5 ↓ | Spurious R1@0.7 ↓ | Spurious mAP ↓ | dyn-ctx R1@0.5 | dyn-ctx R1@0.7 | dyn-ctx mAP "
              "| iid − shifted mAP ↓ |")
    out = []
    for group, rows in summary["groups"].items():
        if not rows:
            continue
        out += [f"**{titles[group]}**", "", header, "|" + "---|" * 14]
        for row in rows:
            metrics = summary["settings"][row["key"]]["metrics"]
            cells = [_cell(metrics[split][k]) for split in SPLITS for k in SPLIT_KEYS[split]]
            cells.append(_cell(summary["settings"][row["key"]]["shortcut_gap"]["MR-full-mAP"]))
            out.append(f"| {row['label']} | " + " | ".join(cells) + " |")
        out.append("")
    labels = {key: setting.label for key, setting in SETTINGS.items()}
    resamples = summary.get("statistics", {}).get("resamples", statistics.RESAMPLES)
    return "\n".join(out + convergence_table(summary)) + "\n" + statistics.markdown(
        summary.get("claims", []), summary.get("costs", {}), labels, resamples)


def convergence_table(summary: dict) -> list[str]:
    """Per setting: best epoch, epochs run and the cap of each seed (runs until converged: the rule stopped it
    before the cap when epochs run < the cap) and the mean seconds per run."""
    rows = [(key, setting) for key, setting in summary["settings"].items()
            if any(v is not None for v in setting.get("convergence", {}).get("epochs_run", []))]
    if not rows:
        return []
    out = ["**Run length (best epoch / epochs run / cap, per seed)**", "",
           "| setting | seeds | best epoch | epochs run | cap | optimizer steps | seconds per run |",
           "|---|---|---|---|---|---|---|"]
    for key, setting in rows:
        c = setting["convergence"]
        c = {**c, "cap": c.get("cap", [None] * len(setting["seeds"]))}  # summaries written before caps were recorded
        joined = [", ".join("-" if v is None else f"{v:g}" for v in c[field])
                  for field in ("best_epoch", "epochs_run", "cap", "steps_run")]
        out.append(f"| {setting['label']} | {', '.join(map(str, setting['seeds']))} | " + " | ".join(joined)
                   + f" | {setting['seconds_per_run']:g} |")
    return out + [""]


def text_table(summary: dict) -> str:
    """The console summary: mAP on each split (mean ± std) and iid / shifted R1@0.7, one line per row."""
    lines = [f"{'setting':44s}{'iid R1@.7':>14s}{'iid mAP':>14s}{'shift R1@.7':>14s}{'shift mAP':>14s}"
             f"{'Spur. mAP↓':>14s}"]
    for group, rows in summary["groups"].items():
        lines.append(f"-- {group}")
        for row in rows:
            m = summary["settings"][row["key"]]["metrics"]
            stats = (m["iid"]["MR-full-R1@0.7"], m["iid"]["MR-full-mAP"], m["shifted"]["MR-full-R1@0.7"],
                     m["shifted"]["MR-full-mAP"], m["spurious"]["Spurious-mAP"])
            lines.append(f"{row['label'][:43]:44s}" + "".join(f"{_cell(s):>14s}" for s in stats))
    lines.append(f"-- claims (95 % CI; '{statistics.NOT_SHOWN}' where it includes 0)")
    for claim in summary["claims"]:
        effects = claim["effects"]
        lines.append(f"{claim['label'][:60]:61s}{claim['axis'][:27]:28s} shifted mAP {statistics.cell(effects['shifted'])}"
                     f";  gap {statistics.cell(effects['gap'])}")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------------------------
# Driver
# ------------------------------------------------------------------------------------------------------------------


def prepare(results_dir: Path, plan: Plan, keys: list[str]) -> None:
    """The spurious data set and the architecture configs of `keys` (feature sizes are filled in from the data)."""
    from td_detr import TDDetrConfig
    from td_detr.data.synthetic import ensure_synthetic_dataset

    ensure_synthetic_dataset(results_dir / "data", seed=0, size=plan.data_size, preset=plan.data_preset)
    for setting in {(SETTINGS[k].architecture, SETTINGS[k].size): SETTINGS[k] for k in keys}.values():
        path = results_dir / "configs" / f"{setting.architecture}_{setting.size}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        TDDetrConfig(**_architecture(setting, plan)).to_json_file(str(path))


def selected_keys(only: str | None) -> list[str]:
    keys = list(SETTINGS)
    if only:
        keys = [k.strip() for k in only.split(",") if k.strip()]
        unknown = [k for k in keys if k not in SETTINGS]
        if unknown:
            raise SystemExit(f"ablate.py: unknown setting(s) {', '.join(unknown)}; choose from {', '.join(SETTINGS)}")
    return keys


def wait_while_running(pattern: str | None, log=print, poll: float = 15.0) -> float:
    """Block while a process whose command line matches `pattern` (pgrep -f) runs: a CPU-timing-sensitive job
    sharing the machine gets it to itself, and our per-run timings stay clean. Returns the seconds waited."""
    if not pattern:
        return 0.0
    announced, start = False, time.perf_counter()
    while _matching_processes(pattern):
        if not announced:
            log(f"waiting while '{pattern}' runs ...")
            announced = True
        time.sleep(poll)
    return time.perf_counter() - start


def _matching_processes(pattern: str) -> set[int]:
    """PIDs matching `pattern` other than this process and its ancestors (whose command lines name the pattern)."""
    found = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True).stdout.split()
    ancestors, pid = set(), os.getpid()
    while pid > 1 and pid not in ancestors:
        ancestors.add(pid)
        try:
            pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            break
    return {int(p) for p in found} - ancestors


def run_ablation(results_dir: Path, plan: Plan, keys: list[str], threads: int, log=print,
                 pause_while: str | None = None, jobs: int = 1) -> dict:
    """Run (or resume) every (setting, seed) of the plan, `jobs` runs at a time (each its own subprocess with
    `threads` threads); write results.json, summary.json, summary.md. Results do not depend on `jobs`."""
    start = time.perf_counter()
    results_dir.mkdir(parents=True, exist_ok=True)
    prepare(results_dir, plan, keys)
    # Seed-major: a run cut short leaves whole seeds done rather than whole settings missing.
    specs = [run_spec(SETTINGS[k], seed, plan, results_dir) for seed in plan.seeds for k in keys]
    by_name: dict[str, dict] = {}
    pending = []
    for index, spec in enumerate(specs, 1):
        name = run_name(spec["key"], spec["seed"])
        finished = load_finished(spec)
        if finished is not None:
            log(f"[{index}/{len(specs)}] {name}: done before, skipped")
            by_name[name] = finished
        else:
            pending.append((index, spec))
    waited = 0.0
    lock = threading.Lock()

    def run_one(index: int, spec: dict) -> None:
        nonlocal waited
        paused = wait_while_running(pause_while, log)
        began = time.perf_counter()
        # The dry run trains in this process unless runs go in parallel (each then needs its own interpreter).
        in_process = plan.in_process and jobs <= 1
        result = execute_run(spec, threads) if in_process else run_in_subprocess(spec, threads)
        m = result["metrics"]
        with lock:
            waited += paused
            by_name[run_name(spec["key"], spec["seed"])] = result
            log(f"[{index}/{len(specs)}] {run_name(spec['key'], spec['seed'])}: {time.perf_counter() - began:.0f}s"
                f"  iid mAP {m['iid']['MR-full-mAP']:.2f}  shifted mAP {m['shifted']['MR-full-mAP']:.2f}"
                f"  Spurious mAP {m['spurious']['Spurious-mAP']:.2f}")

    if jobs <= 1:
        for index, spec in pending:
            run_one(index, spec)
    else:  # a failed run stops new ones from starting; finished ones are already on disk
        with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
            futures = [pool.submit(run_one, index, spec) for index, spec in pending]
            for future in concurrent.futures.as_completed(futures):
                if future.exception() is not None:
                    for other in futures:
                        other.cancel()
                    raise future.exception()
    ran = len(pending)
    results = [by_name[run_name(spec["key"], spec["seed"])] for spec in specs]
    meta = {
        "plan": dataclasses.asdict(plan),
        "data": {"preset": plan.data_preset, "seed": 0,
                 "split_sizes": json.loads((results_dir / "data" / "dataset_info.json").read_text())["split_sizes"]},
        "selection": "best epoch by MR-full-mAP on validation_iid"
                     + (" (until converged: no improvement for a fifth of the run)" if plan.until_converged else ""),
        "runs": len(results),
        "runs_executed_now": ran,
        "wall_seconds_this_invocation": round(time.perf_counter() - start, 1),
        "seconds_paused_for_other_jobs": round(waited, 1),
        "sum_of_run_seconds": round(sum(r["seconds"]["total"] for r in results), 1),
        "threads": threads,
        "parallel_runs": jobs,
        "commands_example": results[0]["commands"] if results else [],
    }
    return write_summary(results_dir, results, meta)


def write_summary(results_dir: Path, results: list[dict], meta: dict) -> dict:
    summary = summarize(results, meta)
    write_json_atomic(results_dir / "results.json", results)
    write_json_atomic(results_dir / "summary.json", summary)
    (results_dir / "summary.md").write_text(markdown_tables(summary))
    return summary


def resummarize(results_dir: Path) -> dict:
    """Rebuild results.json, summary.json and summary.md from every run record in runs/ (whichever invocation wrote
    it, e.g. seeds or a longer cap added later), keeping the stored meta (where and how the runs ran)."""
    try:
        results = [json.loads(path.read_text()) for path in sorted((results_dir / "runs").glob("*.json"))]
        meta = json.loads((results_dir / "summary.json").read_text())["meta"]
    except (OSError, ValueError, KeyError) as error:
        raise SystemExit(f"ablate.py: cannot resummarize {results_dir}: {error}") from None
    if not results:
        raise SystemExit(f"ablate.py: cannot resummarize {results_dir}: no run records in {results_dir / 'runs'}")
    results.sort(key=lambda r: (r["seed"], list(SETTINGS).index(r["key"])))
    return write_summary(results_dir, results, {**meta, "runs": len(results)})


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="1 seed, 4 epochs")
    parser.add_argument("--dry-run", action="store_true",
                        help="tiny data and model, 2 steps, no worker process; wins over --quick (checks the whole pipeline)")
    parser.add_argument("--plan", choices=("study", "earlier"), default="study",
                        help="study: the spurious_hard preset, 5 seeds, until converged (default); earlier: the "
                             "spurious preset, 3 seeds, 12 epochs (docs/RESULTS.md, earlier preset)")
    parser.add_argument("--results-dir", type=Path, help="default: runs/ablation[-earlier|-quick|-dry-run]")
    parser.add_argument("--only", help="comma-separated setting keys (default: all): " + ", ".join(SETTINGS))
    parser.add_argument("--seeds", help="comma-separated seeds (default: the plan's)")
    parser.add_argument("--epochs", type=float, help="training epochs per run (default: the plan's)")
    parser.add_argument("--threads", type=int, default=2, help="torch / OpenMP threads per run (default 2)")
    parser.add_argument("--jobs", type=int, default=1,
                        help="runs at a time, each a subprocess with --threads threads (e.g. --jobs 2 --threads 1 "
                             "on 2 cores); results are the same for any value")
    parser.add_argument("--pause-while", metavar="PATTERN",
                        help="before each run, wait while a process matching PATTERN (pgrep -f) runs")
    parser.add_argument("--summarize-only", action="store_true",
                        help="rebuild results.json / summary.json / summary.md of --results-dir from the run records in "
                             "its runs/ folder; run nothing")
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)  # internal: run one spec file
    return parser.parse_args(argv)


def chosen_plan(args) -> Plan:
    """--dry-run shrinks whichever plan was asked for (so `--quick --dry-run` checks the quick run's pipeline)."""
    return PLANS["dry_run" if args.dry_run else "quick" if args.quick else args.plan]


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.worker:
        execute_run(json.loads(args.worker.read_text()), args.threads)
        return 0
    plan = chosen_plan(args)
    if args.seeds:
        plan = dataclasses.replace(plan, seeds=tuple(int(s) for s in args.seeds.split(",")))
    if args.epochs:
        plan = dataclasses.replace(plan, epochs=args.epochs, max_steps=None)
    results_dir = args.results_dir or REPO / "runs" / {"study": "ablation", "earlier": "ablation-earlier",
                                                       "quick": "ablation-quick", "dry_run": "ablation-dry-run"}[plan.name]
    if args.summarize_only:
        summary = resummarize(results_dir.absolute())
    else:
        summary = run_ablation(results_dir.absolute(), plan, selected_keys(args.only), args.threads,
                               pause_while=args.pause_while, jobs=args.jobs)
    print()
    print(text_table(summary))
    print(f"\nwrote {results_dir / 'results.json'}, {results_dir / 'summary.json'} and {results_dir / 'summary.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
