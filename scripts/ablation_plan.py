"""What the ablation study of ``scripts/ablate.py`` trains: the settings, the table groups and claims built on them,
the plans (data, model sizes, schedule, seeds) and each run's ``td-detr`` commands with their fingerprint.

Data: ``td-detr make-synthetic DATA --preset spurious_hard`` (train: a cue brackets every moment; the action is a
much fainter signal than the cue; the earlier plan used ``--preset spurious``). Every run trains with
``td-detr train`` (best epoch chosen on ``validation_iid``, the in-distribution split: the shifted split is never
used for selection; the study plan trains ``--until-converged``: until the selection metric has not improved for a
fifth of the run, at most ``epochs``), evaluates on ``validation`` (the shifted split) and runs
``td-detr spurious-eval`` on ``validation_iid`` (:func:`run_spec`).

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

A run's fingerprint covers everything in its spec but the paths, so a moved results folder still resumes and a
changed setting or plan reruns.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from pathlib import Path

from ablation_statistics import Claim
from td_detr.registry import DATA_SETS


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
    min_improvement: float | None = None  # with until_converged: gains at or below this many points do not count


# The synthetic preset model (td_detr.registry), recorded in every run's spec; QD-DETR's width on top of it.
SYNTHETIC_MODEL = dict(DATA_SETS["synthetic"].model)
QD_DETR_WIDTH_MODEL = {**SYNTHETIC_MODEL, "hidden_size": 256, "num_attention_heads": 8, "ffn_dim": 1024}
MODEL_SIZES = {"small": SYNTHETIC_MODEL, "qd_detr_width": QD_DETR_WIDTH_MODEL}
TINY_MODEL = dict(hidden_size=16, num_attention_heads=2, ffn_dim=32, t2v_layers=1, encoder_layers=1,
                  decoder_layers=1, num_queries=4, input_dropout=0.1)
PLANS = {
    # The study of issue 19: the spurious_hard preset with 1280 training queries (40 batches of 32 a round, 640 per
    # evaluation split), trained until converged (cap 60 rounds; the learning rate drops x0.1 every 16 rounds, which a
    # 1.5x round scales exactly; the rule may stop a run from round 21, 5 rounds past the first drop). With 320
    # queries (study_320) the models hardly learned: iid mAP 10-24 where the cue-only oracle scores 100, training
    # loss still falling when the rule stopped them at round 21 (210 steps). Pilot at 1280 (seed 0): the baseline
    # peaked at iid mAP 38.35 (round 15) and scored 1.69 on the shifted split; the full model reached 71.00 at
    # round 34 and was still within the rule at the 40-round cap, hence 60.
    "study": Plan("study", (0, 1, 2, 3, 4), epochs=60, max_steps=None, batch_size=32, data_size=1280,
                  sizes=MODEL_SIZES, data_preset="spurious_hard", until_converged=True,
                  learning_rates={"qd_detr_width": 5e-4}, lr_drop_epochs=16, min_evaluations=21),
    # The next plan for that study (docs/RESULTS.md, "What is missing"): a pilot of 5 runs with the first drop at
    # round 32 (cap 80) raised every run's iid mAP by 15-31 points and every run still reached the cap, so: the first
    # drop at 32, the floor 4 rounds past it, cap 120, and gains of 0.5 point or less do not keep a run going
    # (scripts/convergence_replay.py: on the study's runs such a threshold saved 13 % of the rounds).
    "study_long": Plan("study_long", (0, 1, 2, 3, 4), epochs=120, max_steps=None, batch_size=32, data_size=1280,
                       sizes=MODEL_SIZES, data_preset="spurious_hard", until_converged=True,
                       learning_rates={"qd_detr_width": 5e-4}, lr_drop_epochs=32, min_evaluations=36,
                       min_improvement=0.5),
    # The first pass of that study (docs/RESULTS.md): 320 training queries = 10 batches a round, 160 per evaluation
    # split, cap 40 rounds (at cap 30 the baseline was still rising at the cap).
    "study_320": Plan("study_320", (0, 1, 2, 3, 4), epochs=40, max_steps=None, batch_size=32, data_size=320,
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
# One run: its name, commands, fingerprint and schedule
# ------------------------------------------------------------------------------------------------------------------


def run_name(key: str, seed: int) -> str:
    return f"{key}__seed{seed}"


def run_spec(setting: Setting, seed: int, plan: Plan, results_dir: Path, device: str = "cpu") -> dict:
    """Everything a worker needs, JSON-serialisable; `fingerprint` changes when any of it does. `device` ("cpu" or
    "cuda") is where all three commands run: on CUDA they get ``--device cuda`` and training keeps its features on
    the GPU (``--features-on-device``: no host collation or copies a step); it enters the spec, and so the
    fingerprint, only when it is not the CPU, so the CPU runs keep the fingerprints and commands they had before."""
    data = results_dir / "data"
    config = results_dir / "configs" / f"{setting.architecture}_{setting.size}.json"
    work = results_dir / "work" / run_name(setting.key, seed)
    common = ["--dataset", "synthetic", "--data-dir", str(data), "--cache-dir", str(results_dir / "cache")]
    on_device = [] if device == "cpu" else ["--device", device]
    train = ["train", *common, "--eval-split", "validation_iid", "--config", str(config), "--seed", str(seed),
             "--batch-size", str(plan.batch_size), "--output-dir", str(work / "model"), *setting.flags,
             *schedule_flags(setting, plan), *on_device, *(["--features-on-device"] if on_device else [])]
    evaluate = ["evaluate", "--model", str(work / "model"), *common, "--eval-split", "validation",
                "--output-dir", str(work / "shifted"), *on_device]
    spurious = ["spurious-eval", "--model", str(work / "model"), "--dataset", "synthetic", "--data-dir", str(data),
                "--cache-dir", str(work / "spurious-cache"), "--eval-split", "validation_iid",
                "--output-dir", str(work / "spurious"), *on_device]
    spec = {
        "key": setting.key, "label": setting.label, "seed": seed, "plan": plan.name, "flags": list(setting.flags),
        "architecture": setting.architecture, "size": setting.size, "model": architecture_config(setting, plan),
        "epochs": plan.epochs, "max_steps": plan.max_steps, "batch_size": plan.batch_size,
        "data_size": plan.data_size, "data_preset": plan.data_preset, "until_converged": plan.until_converged,
        "samples_per_round": samples_per_round(setting, plan), "rows_per_batch": rows_per_batch(setting, plan),
        "commands": [train, evaluate, spurious],
        **({"device": device} if on_device else {}),
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

    config = TDDetrConfig(**architecture_config(setting, plan))
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
        if plan.min_improvement:
            flags += ["--min-improvement", str(plan.min_improvement)]
    if plan.max_steps:
        return flags + ["--max-steps", str(round(plan.max_steps * rounds))]
    lr_drop = plan.lr_drop_epochs or DATA_SETS["synthetic"].training.lr_drop_epochs
    if rounds == 1.0:
        return flags + ["--epochs", str(plan.epochs), "--lr-drop", str(lr_drop)]
    steps_per_round = round(rounds * math.ceil(plan.data_size / plan.batch_size))
    # --lr-drop counts epochs of ceil(N/B) steps: the drop comes at r x the plan's step.
    return flags + ["--save-steps", str(steps_per_round), "--max-steps", str(round(plan.epochs * steps_per_round)),
                    "--lr-drop", str(round(lr_drop * rounds))]


def architecture_config(setting: Setting, plan: Plan) -> dict:
    """TDDetrConfig keywords of `setting`: the plan's model of its size, with QD-DETR's loss / matcher weights for the
    qd_detr architecture (feature sizes come from the data)."""
    return {**plan.sizes[setting.size], **(QD_DETR_WEIGHTS if setting.architecture == "qd_detr" else {})}
