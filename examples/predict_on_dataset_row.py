"""Load the model the main job trained and predict the moments of one validation query from its feature files.

`td-detr train` (the README's main job) writes the synthetic data set in the standard layout to td-detr-data/synthetic
and saves the model, with its processor, to td-detr-runs/synthetic. Run this from the folder you ran it in:

    python examples/predict_on_dataset_row.py
"""

import json

import numpy as np
import torch

from td_detr import AutoModelForMomentRetrieval, TDDetrProcessor  # importing td_detr registers the auto class

model = AutoModelForMomentRetrieval.from_pretrained("td-detr-runs/synthetic").eval()  # a folder or a Hub repo id
processor = TDDetrProcessor.from_pretrained("td-detr-runs/synthetic")  # saved with the model by td-detr train

data = "td-detr-data/synthetic"  # annotations + {vid}.npz per video feature type + qid{N}.npz per query
with open(f"{data}/validation.jsonl") as annotations:
    row = json.loads(annotations.readline())  # qid, query, vid, duration, relevant_windows (seconds), ...
slowfast = np.load(f"{data}/slowfast_features/{row['vid']}.npz")["features"]  # [clips, 64], raw
clip = np.load(f"{data}/clip_features/{row['vid']}.npz")["features"]  # [clips, 32], raw
text = np.load(f"{data}/clip_text_features/qid{row['qid']}.npz")["last_hidden_state"]  # [tokens, 32], raw

inputs = processor(videos=[[slowfast, clip]], texts=[text])  # per-type L2, cut to the shortest, concatenated, padded
with torch.no_grad():
    outputs = model(**{name: inputs[name] for name in processor.model_input_names})
results = processor.post_process_moment_retrieval(outputs, durations=[row["duration"]], window_starts=inputs["window_starts"])
prediction = results[0]  # ranked [start_s, end_s, score] windows and one saliency score per clip

print(f"query {row['qid']} on video {row['vid']} ({row['duration']:g} s): {row['query']!r}")
print(f"ground truth: {row['relevant_windows']}")
for start, end, score in prediction["pred_relevant_windows"][:3]:
    print(f"  {start:6.1f} - {end:6.1f} s   score {score:.3f}")
saliency = prediction["pred_saliency_scores"]
best = max(range(len(saliency)), key=saliency.__getitem__)
print(f"most salient clip: {best} ({best * processor.clip_length:g} s)")
