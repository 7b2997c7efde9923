"""TDDetrTrainer: evaluation never synthesizes, metrics come from the official evaluator, same seed → same run,
and a run resumed from a checkpoint ends with the weights of an uninterrupted one."""

import pytest
import torch
from safetensors.torch import load_file

from td_detr import TDDetrConfig, TDDetrForMomentRetrieval
from td_detr.data.builder import get_dataset_settings, load_moment_retrieval_dataset
from td_detr.data.collator import DataCollatorForMomentRetrieval
from td_detr.data.ground_truth import ground_truth_records
from td_detr.metrics import evaluate_submission
from td_detr.training import (
    TRAINING_PRESETS,
    TDDetrTrainer,
    model_config_for,
    training_arguments,
)

from training_utils import TINY_MODEL, make_tiny_synthetic


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic")
    folder = make_tiny_synthetic(root / "data", size=24)
    splits = load_moment_retrieval_dataset(str(folder), cache_dir=str(root / "cache"))
    return splits, get_dataset_settings(str(folder))


def make_trainer(data, output_dir, max_steps=4, save_steps=None, seed=0, **extra):
    splits, settings = data
    config = model_config_for("synthetic", settings, base=TDDetrConfig(**TINY_MODEL))
    torch.manual_seed(seed)
    model = TDDetrForMomentRetrieval(config)
    overrides = dict(max_steps=max_steps, per_device_train_batch_size=8, per_device_eval_batch_size=4, seed=seed,
                     data_seed=seed, disable_tqdm=True, eval_strategy="no", load_best_model_at_end=False)
    if save_steps:
        overrides.update(save_strategy="steps", save_steps=save_steps, save_total_limit=None)
    else:
        overrides.update(save_strategy="no")
    overrides.update(extra)
    args = training_arguments(str(output_dir), TRAINING_PRESETS["synthetic"], **overrides)
    return TDDetrTrainer(
        model=model, args=args, train_dataset=splits["train"], eval_dataset=splits["validation"],
        data_collator=DataCollatorForMomentRetrieval.from_config(config, training=True, seed=seed),
        eval_data_collator=DataCollatorForMomentRetrieval.from_config(config, training=False, seed=seed),
        lr_drop_epochs=1, lr_gamma=0.5,
    )


def weights(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_evaluation_uses_the_plain_collator_and_the_official_metrics(data, tmp_path):
    trainer = make_trainer(data, tmp_path)
    assert trainer.get_train_dataloader().collate_fn.synthesizer is not None
    assert trainer.get_eval_dataloader().collate_fn.synthesizer is None
    metrics = trainer.evaluate()
    again = trainer.evaluate()
    assert metrics["eval_MR-full-mAP"] == again["eval_MR-full-mAP"]  # no augmentation leaks into evaluation
    splits, _ = data
    records = trainer.last_predictions  # 6 queries in batches of 4: the last, partial batch must not be cut
    assert sorted(r["qid"] for r in records) == sorted(splits["validation"]["qid"])
    expected = evaluate_submission(records, ground_truth_records(splits["validation"]), clip_length=2.0)
    assert metrics["eval_MR-full-mAP"] == expected["brief"]["MR-full-mAP"]
    assert metrics["eval_HL-min-VeryGood-mAP"] == expected["brief"]["HL-min-VeryGood-mAP"]


def test_learning_rate_steps_down_per_epoch(data, tmp_path):
    trainer = make_trainer(data, tmp_path, max_steps=7)
    trainer.train()
    steps_per_epoch = len(trainer.get_train_dataloader())  # 24 queries / 8 = 3
    assert steps_per_epoch == 3
    assert trainer.lr_scheduler.get_last_lr()[0] == pytest.approx(1e-3 * 0.5 ** (7 // 3))


def test_same_seed_gives_the_same_run(data, tmp_path):
    first = make_trainer(data, tmp_path / "a", max_steps=4)
    first.train()
    second = make_trainer(data, tmp_path / "b", max_steps=4)
    second.train()
    a, b = weights(first.model), weights(second.model)
    assert all(torch.equal(a[k], b[k]) for k in a)
    other = make_trainer(data, tmp_path / "c", max_steps=4, seed=1)
    other.train()
    assert not all(torch.equal(a[k], weights(other.model)[k]) for k in a)


def test_resume_ends_with_the_weights_of_an_uninterrupted_run(data, tmp_path):
    uninterrupted = make_trainer(data, tmp_path / "full", max_steps=6)
    uninterrupted.train()
    # "killed" after step 3: the run stops having saved checkpoint-3 ...
    interrupted = make_trainer(data, tmp_path / "run", max_steps=6, save_steps=3)
    interrupted.add_callback(StopAt(3))
    interrupted.train()
    checkpoint = tmp_path / "run" / "checkpoint-3"
    assert (checkpoint / "model.safetensors").exists()
    # ... and a fresh process-like trainer resumes from it
    resumed = make_trainer(data, tmp_path / "run", max_steps=6, save_steps=3, seed=0)
    with torch.no_grad():  # start from different weights to prove they come from the checkpoint
        for p in resumed.model.parameters():
            p.add_(1.0)
    resumed.train(resume_from_checkpoint=str(checkpoint))
    a, b = weights(uninterrupted.model), weights(resumed.model)
    worst = max((a[k] - b[k]).abs().max().item() for k in a)
    assert worst < 1e-6, worst
    saved = load_file(str(tmp_path / "run" / "checkpoint-6" / "model.safetensors"))
    assert torch.allclose(saved["class_head.weight"], b["class_head.weight"])


class StopAt:
    """A TrainerCallback that stops training right after the checkpoint of a given step, like a kill would."""

    def __init__(self, step):
        self.step = step

    def __getattr__(self, name):
        if name.startswith("on_"):
            return lambda args, state, control, **kwargs: control
        raise AttributeError(name)

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step >= self.step:
            control.should_save = True
            control.should_training_stop = True
        return control


def test_evaluation_inside_training_sees_every_query(data, tmp_path):
    """Evaluated at an epoch end whose training batch was partial (24 queries in batches of 5): the training
    loader's remainder must not cut the gathered predictions."""
    trainer = make_trainer(data, tmp_path, max_steps=5, per_device_train_batch_size=5, eval_strategy="epoch")
    trainer.train()
    assert any("eval_MR-full-mAP" in entry for entry in trainer.state.log_history)
    splits, _ = data
    assert sorted(r["qid"] for r in trainer.last_predictions) == sorted(splits["validation"]["qid"])


def preset_trainer(output_dir, preset_name, rows, **extra):
    """A trainer set up from a preset as `td-detr train` does, on a data set of `rows` placeholder rows."""
    import datasets

    from td_detr.training import preset_for

    preset = preset_for(preset_name)
    config = TDDetrConfig(**TINY_MODEL, video_feature_size=8, text_feature_size=8)
    args = training_arguments(str(output_dir), preset, eval_strategy="no", save_strategy="no",
                              load_best_model_at_end=False, **extra)
    return preset, TDDetrTrainer(
        model=TDDetrForMomentRetrieval(config), args=args, train_dataset=datasets.Dataset.from_dict({"qid": list(range(rows))}),
        data_collator=DataCollatorForMomentRetrieval.from_config(config, training=True),
        lr_drop_epochs=preset.lr_drop_epochs, lr_gamma=preset.lr_gamma, passes_per_epoch=preset.passes_per_epoch,
        weight_decay_scope=preset.weight_decay_scope,
    )


@pytest.mark.parametrize("rows", [5, 37, 70])
@pytest.mark.parametrize("name", ["qvhighlights", "charades_sta"])
def test_real_data_presets_take_the_official_steps_and_drop_the_rate_at_the_official_steps(tmp_path, name, rows):
    import math

    preset, trainer = preset_trainer(tmp_path, name, rows)
    official_steps_per_epoch = math.ceil(2 * rows / preset.batch_size)  # len(SimSampler) over 2N entries
    official_drops = ([official_steps_per_epoch * epoch for epoch in range(preset.lr_drop_epochs, preset.epochs,
                                                                            preset.lr_drop_epochs)]
                      if preset.lr_drop_epochs else [])  # official StepLR: stepped once per epoch
    plan = trainer.planned_schedule()
    assert len(trainer.get_train_dataloader()) == official_steps_per_epoch == plan["steps_per_epoch"]
    assert plan["total_steps"] == official_steps_per_epoch * preset.epochs
    assert plan["lr_drop_steps"] == official_drops
    # the scheduler the Trainer builds drops the rate at exactly those steps
    trainer.create_optimizer_and_scheduler(plan["total_steps"])
    rates = []
    for _ in range(plan["total_steps"]):
        rates.append(trainer.lr_scheduler.get_last_lr()[0])
        trainer.optimizer.step()  # no gradients: parameters stay, the step count advances
        trainer.lr_scheduler.step()
    assert [step for step in range(1, len(rates)) if rates[step] < rates[step - 1]] == official_drops
    assert rates[0] == preset.learning_rate


def test_an_epoch_sees_every_row_once_per_pass(tmp_path):
    _, trainer = preset_trainer(tmp_path, "qvhighlights", 7)
    assert sorted(trainer.train_dataset["qid"]) == sorted(list(range(7)) * 2)


@pytest.mark.parametrize("scope", ["all", "weights"])
def test_weight_decay_reaches_every_parameter_as_officially_or_only_weights(data, tmp_path, scope):
    trainer = make_trainer(data, tmp_path)
    trainer.weight_decay_scope = scope
    trainer.create_optimizer()
    decayed = {id(p) for group in trainer.optimizer.param_groups if group["weight_decay"] > 0 for p in group["params"]}
    names = {name for name, p in trainer.model.named_parameters() if id(p) in decayed}
    every = {name for name, _ in trainer.model.named_parameters()}
    if scope == "all":  # official: torch.optim.AdamW(model.parameters(), weight_decay=wd)
        assert names == every
    else:
        assert "class_head.bias" not in names and "class_head.weight" in names and names < every


def test_labels_stay_on_the_host_while_the_model_inputs_are_prepared(data, tmp_path):
    """The loss batches the labels' per-row tensors before copying them to the model's device, so the trainer hands
    the label list over untouched (the Trainer's own _prepare_inputs rebuilt it tensor by tensor: one copy each)."""
    trainer = make_trainer(data, tmp_path / "run")
    splits, _ = data
    batch = trainer.data_collator([splits["train"][i] for i in range(4)])
    batch.pop("meta")
    prepared = trainer._prepare_inputs(batch)
    assert prepared["labels"] is batch["labels"]
    assert set(prepared) == set(batch) and prepared["video_features"].device == trainer.args.device
