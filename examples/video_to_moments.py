"""Find the moments of a video file that match a text query, with a CLIP-only model and a local CLIP folder.

Get the model (docs/MODELS.md: the QD-DETR authors' CLIP-only checkpoint, converted) and the CLIP its features were
made with, once, as folders, so that nothing is downloaded when it runs:

    td-detr convert --from qd-detr model_best.ckpt --output-dir qd-detr-qvh-clip
    hf download openai/clip-vit-base-patch32 --local-dir clip-vit-base-patch32

then, with your video saved as my_video.mp4:

    python examples/video_to_moments.py
"""

import td_detr.pipeline  # registers the "moment-retrieval" task with transformers.pipeline
from transformers import pipeline

pipe = pipeline("moment-retrieval", model="qd-detr-qvh-clip", clip_model="clip-vit-base-patch32")
result = pipe("my_video.mp4", "a man opens the fridge", top_k=3)
print(result["windows"])  # [{"start": 12.0, "end": 20.0, "score": 0.91}, ...] best first, in seconds

saliency = result["saliency"]  # one score per clip of result["clip_length"] seconds
best = max(range(len(saliency)), key=saliency.__getitem__)
print(f"{result['duration']:g} s; most salient clip: {best * result['clip_length']:g}-{(best + 1) * result['clip_length']:g} s")
