"""Fine-tune a trained model on a small data set of your own, laid out in the standard format.

Part 1 writes a tiny data set the way you would lay out your own (any features work, as long as their widths match
the model you fine-tune; start from scratch with `td-detr train --train-file ...` otherwise):

    own-data/train.jsonl, own-data/val.jsonl    one query per line: qid, query, vid, duration, relevant_windows (s)
    own-data/video/{vid}.npz                    key "features": [clips, video width], one row per clip
    own-data/text/qid{qid}.npz                  key "last_hidden_state": [tokens, text width]

Part 2 fine-tunes the demo model the main job trained (td-detr-runs/synthetic) with the Hugging Face Trainer and saves
the result to own-model/. Run from the folder you ran `td-detr train` in:

    python examples/finetune_own_data.py
"""

import json
from pathlib import Path

import numpy as np
from transformers import TrainingArguments

from td_detr import AutoModelForMomentRetrieval
from td_detr.data import DataCollatorForMomentRetrieval, load_moment_retrieval_dataset
from td_detr.training import TDDetrTrainer

DATA, OUTPUT_DIR = Path("own-data"), "own-model"
VIDEOS, EPOCHS = 24, 3  # 3 queries per video

model = AutoModelForMomentRetrieval.from_pretrained("td-detr-runs/synthetic")
config = model.config

# --- Part 1: a small data set in the standard layout (stands in for your own files) -------------------------------
rng = np.random.default_rng(0)
topics = rng.normal(size=(5, config.video_feature_size))  # each query is about one of 5 "actions"
words = rng.normal(size=(5, config.text_feature_size))
records = []
for v in range(VIDEOS):
    clips = int(rng.integers(10, 30))
    video = rng.normal(size=(clips, config.video_feature_size))
    for q in range(3):
        topic, start = int(rng.integers(5)), int(rng.integers(0, clips - 4))
        length = int(rng.integers(2, 5))
        video[start:start + length] += 3 * topics[topic]  # the action happens in these clips
        qid = 3 * v + q
        tokens = words[topic] + 0.3 * rng.normal(size=(int(rng.integers(4, 9)), config.text_feature_size))
        (DATA / "text").mkdir(parents=True, exist_ok=True)
        np.savez(DATA / "text" / f"qid{qid}.npz", last_hidden_state=tokens.astype(np.float32))
        records.append({"qid": qid, "query": f"action {topic}", "vid": f"video{v}",
                        "duration": clips * config.clip_length,
                        "relevant_windows": [[start * config.clip_length, (start + length) * config.clip_length]]})
    (DATA / "video").mkdir(parents=True, exist_ok=True)
    np.savez(DATA / "video" / f"video{v}.npz", features=video.astype(np.float32))
split = len(records) * 3 // 4
for name, rows in (("train.jsonl", records[:split]), ("val.jsonl", records[split:])):
    (DATA / name).write_text("".join(json.dumps(record) + "\n" for record in rows))

# --- Part 2: fine-tune ---------------------------------------------------------------------------------------------
splits = load_moment_retrieval_dataset(
    "layout",
    annotation_files={"train": str(DATA / "train.jsonl"), "validation": str(DATA / "val.jsonl")},
    video_feature_dirs=(str(DATA / "video"),), text_feature_dir=str(DATA / "text"),
    clip_length=config.clip_length, max_video_length=None, max_query_length=None,
)
training_args = TrainingArguments(
    output_dir=str(Path(OUTPUT_DIR) / "checkpoints"), num_train_epochs=EPOCHS,
    per_device_train_batch_size=8, per_device_eval_batch_size=32, learning_rate=1e-4, weight_decay=1e-4,
    max_grad_norm=0.1, eval_strategy="epoch", save_strategy="no", logging_strategy="epoch", report_to="none",
    remove_unused_columns=False, label_names=["labels"],  # the collator needs every column; labels are a list
)
trainer = TDDetrTrainer(
    model=model, args=training_args, train_dataset=splits["train"], eval_dataset=splits["validation"],
    data_collator=DataCollatorForMomentRetrieval.from_config(config, training=True),  # with the video synthesizer
    eval_data_collator=DataCollatorForMomentRetrieval.from_config(config, training=False),
)
before = trainer.evaluate()["eval_MR-full-mAP"]
trainer.train()
after = trainer.evaluate()["eval_MR-full-mAP"]
print(f"validation mAP: {before:.2f} before, {after:.2f} after fine-tuning on {split} queries")
trainer.save_model(OUTPUT_DIR)
print(f"saved to {OUTPUT_DIR}")
