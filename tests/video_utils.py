"""Test helpers: tiny generated videos whose frames encode their own index, and a tiny random CLIP saved to disk."""

from __future__ import annotations

import string
from pathlib import Path

import numpy as np

GRAY_STEP = 8  # frame i is a uniform gray of level i * GRAY_STEP, so a decoded frame tells which frame it was


def write_test_video(path, seconds: float = 7.0, fps: int = 4, size=(64, 48), codec: str = "libx264") -> Path:
    """Write ``seconds × fps`` frames of ``size`` (width, height) with PyAV; frame i has gray level i·GRAY_STEP."""
    import av

    path = Path(path)
    width, height = size
    count = round(seconds * fps)
    assert (count - 1) * GRAY_STEP <= 255, "too many frames for the gray-level index code"
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for index in range(count):
            image = np.full((height, width, 3), index * GRAY_STEP, dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def frame_indices(frames: np.ndarray) -> np.ndarray:
    """Which generated frame each RGB frame [n, H, W, 3] is (lossy coding moves gray levels by a unit or two)."""
    return np.rint(frames.reshape(len(frames), -1).mean(axis=1) / GRAY_STEP).astype(int)


TEXT_HIDDEN_SIZE = 16  # text tower width: the per-token text features
PROJECTION_DIM = 12  # CLIP embedding width: the per-clip video features


def save_tiny_clip(folder, text_hidden_size: int = TEXT_HIDDEN_SIZE, projection_dim: int = PROJECTION_DIM) -> Path:
    """A randomly initialised CLIP (ViT with 224-px input and 32-px patches, one layer each) with a character-level
    tokenizer and the standard CLIP image processor (resize 224, centre-crop 224), saved with ``save_pretrained``.
    ``text_hidden_size`` / ``projection_dim``: widths of the text features / video features it makes."""
    import torch
    from transformers import CLIPConfig, CLIPModel, CLIPTokenizer
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    folder = Path(folder)
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for character in string.ascii_lowercase + string.digits + ".,!?'":
        vocab[character] = len(vocab)
        vocab[character + "</w>"] = len(vocab)
    tokenizer = CLIPTokenizer(vocab=vocab, merges=[])
    layers = dict(intermediate_size=32, num_hidden_layers=1, num_attention_heads=2)
    config = CLIPConfig(
        text_config=dict(vocab_size=len(vocab), hidden_size=text_hidden_size, max_position_embeddings=40,
                         bos_token_id=0, eos_token_id=1, pad_token_id=1, **layers),
        vision_config=dict(hidden_size=16, image_size=224, patch_size=32, **layers),
        projection_dim=projection_dim,
    )
    torch.manual_seed(0)
    CLIPModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    CLIPImageProcessorPil().save_pretrained(folder)
    return folder


def ffmpeg_fps_filter_frames(path, rate: str) -> np.ndarray:
    """The frames FFmpeg's ``fps`` filter outputs at ``rate`` (e.g. "1/2"), through PyAV's filter graph: the sampling
    the original QVHighlights extractor used."""
    import av

    frames = []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        graph = av.filter.Graph()
        source, fps, sink = graph.add_buffer(template=stream), graph.add("fps", f"fps={rate}"), graph.add("buffersink")
        source.link_to(fps)
        fps.link_to(sink)
        graph.configure()

        def drain():
            while True:
                try:
                    frames.append(graph.pull().to_ndarray(format="rgb24"))
                except (av.BlockingIOError, av.EOFError):
                    return

        for frame in container.decode(stream):
            graph.push(frame)
            drain()
        graph.push(None)
        drain()
    return np.stack(frames)
