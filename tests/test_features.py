"""Video decoding, clip frame sampling and CLIP encoding (td_detr.features) on generated videos and a tiny CLIP."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("av")

from td_detr.errors import TDDetrInputError  # noqa: E402
from td_detr.features import (  # noqa: E402
    CLIPFeatureEncoder,
    clip_centres,
    iter_clip_frames,
    load_clip_encoder,
    num_clips,
    read_clip_frames,
    upright,
)
from video_utils import (  # noqa: E402
    PROJECTION_DIM,
    TEXT_HIDDEN_SIZE,
    ffmpeg_fps_filter_frames,
    frame_indices,
    save_tiny_clip,
    write_test_video,
)


@pytest.fixture(scope="module")
def video_path(tmp_path_factory):
    return write_test_video(tmp_path_factory.mktemp("video") / "seven_seconds.mp4", seconds=7, fps=4)


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    return save_tiny_clip(tmp_path_factory.mktemp("tiny_clip"))


@pytest.fixture(scope="module")
def encoder(clip_dir):
    return CLIPFeatureEncoder.from_pretrained(str(clip_dir))


@pytest.mark.parametrize(
    ("duration", "clip_length", "expected"),
    [(7.0, 2.0, 4), (6.0, 2.0, 3), (150.0, 2.0, 75), (0.3, 2.0, 1), (30.2, 1.0, 31), (6.000000001, 2.0, 3)],
)
def test_clip_count_is_ceil_of_duration_over_clip_length(duration, clip_length, expected):
    assert num_clips(duration, clip_length) == expected
    assert len(clip_centres(duration, clip_length)) == expected


def test_clip_centres():
    np.testing.assert_allclose(clip_centres(7.0, 2.0), [1.0, 3.0, 5.0, 7.0])
    np.testing.assert_allclose(clip_centres(6.0, 2.0), [1.0, 3.0, 5.0])
    with pytest.raises(TDDetrInputError, match="positive"):
        num_clips(0.0, 2.0)


def test_samples_the_frame_on_screen_just_before_each_clip_centre(video_path):
    sampled = read_clip_frames(video_path, clip_length=2.0)
    assert sampled.duration == pytest.approx(7.0)
    assert sampled.frames.shape == (4, 48, 64, 3) and sampled.frames.dtype == np.uint8
    np.testing.assert_allclose(sampled.clip_centres, [1.0, 3.0, 5.0, 7.0])
    # 4 fps: frame i starts at i / 4 s; frames 4, 12, 20 start exactly at the centres 1, 3, 5 s, so the frames on
    # screen just before are 3, 11, 19; the partial last clip's centre (7 s) is past the end: the last frame, 27
    np.testing.assert_array_equal(frame_indices(sampled.frames), [3, 11, 19, 27])
    np.testing.assert_allclose(sampled.timestamps, [0.75, 2.75, 4.75, 6.75])


@pytest.mark.parametrize(
    ("seconds", "fps", "clip_length", "rate"),
    [(7, 4, 2.0, "1/2"), (6, 4, 2.0, "1/2"), (5, 3, 2.0, "1/2"), (5, 4, 0.75, "4/3"), (1.2, 25, 0.4, "5/2")],
)
def test_sampling_equals_ffmpeg_fps_filter_of_the_original_extractor(tmp_path, seconds, fps, clip_length, rate):
    path = write_test_video(tmp_path / "video.mp4", seconds=seconds, fps=fps)
    ours = frame_indices(read_clip_frames(path, clip_length).frames)
    np.testing.assert_array_equal(ours, frame_indices(ffmpeg_fps_filter_frames(path, rate)))


def test_between_frames_the_earlier_frame_is_taken_and_slow_videos_repeat_frames(tmp_path):
    path = write_test_video(tmp_path / "one_fps.mp4", seconds=5, fps=1)
    sampled = read_clip_frames(path, clip_length=0.75)  # centres 0.375, 1.125, 1.875, ... 4.875 (7 clips)
    assert len(sampled.frames) == num_clips(5.0, 0.75) == 7
    expected = np.ceil(clip_centres(5.0, 0.75)).astype(int) - 1  # frame k is on screen during [k, k+1)
    np.testing.assert_array_equal(frame_indices(sampled.frames), expected)
    assert len(set(expected.tolist())) < len(expected)  # some frames serve two clips


def test_a_raw_stream_without_timestamps_is_read_at_its_nominal_rate(tmp_path):
    path = write_test_video(tmp_path / "raw.h264", seconds=7, fps=4)  # no container: no timestamps, FFmpeg says 25 fps
    sampled = read_clip_frames(path, clip_length=0.4)
    assert sampled.duration == pytest.approx(28 / 25)
    np.testing.assert_array_equal(frame_indices(sampled.frames), [4, 14, 24])  # centres 0.2, 0.6, 1.0 s at 25 fps


def test_display_rotation_turns_frames_upright():
    frame = np.arange(6).reshape(2, 3, 1)  # 2 rows, 3 columns; 0 at the top left
    assert upright(frame, 0) is frame
    clockwise = upright(frame, -90)  # FFmpeg autorotate: display matrix -90° → transpose=clock
    assert clockwise.shape == (3, 2, 1) and clockwise[0, -1, 0] == 0 and clockwise[0, 0, 0] == 3
    assert upright(frame, 90)[-1, 0, 0] == 0  # counter-clockwise: the top left goes to the bottom left
    np.testing.assert_array_equal(upright(frame, 180), frame[::-1, ::-1])


def test_streaming_batches_equal_one_read(video_path):
    whole = read_clip_frames(video_path, clip_length=1.0)
    batches = list(iter_clip_frames(video_path, clip_length=1.0, batch_size=3))
    assert [len(frames) for frames, *_ in batches] == [3, 3, 1]
    np.testing.assert_array_equal(np.concatenate([frames for frames, *_ in batches]), whole.frames)
    np.testing.assert_allclose(np.concatenate([centres for _, _, centres, _ in batches]), whole.clip_centres)
    np.testing.assert_array_equal(frame_indices(whole.frames), [1, 5, 9, 13, 17, 21, 25])  # centres 0.5, 1.5, ...


def test_unusable_files_raise_clear_errors(tmp_path):
    import av

    with pytest.raises(TDDetrInputError, match="not found"):
        read_clip_frames(tmp_path / "missing.mp4", 2.0)
    garbage = tmp_path / "garbage.mp4"
    garbage.write_text("this is not a video")
    with pytest.raises(TDDetrInputError, match="garbage.mp4.*not a readable video"):
        read_clip_frames(garbage, 2.0)

    audio = tmp_path / "sound.wav"
    with av.open(str(audio), "w") as container:
        stream = container.add_stream("pcm_s16le", rate=8000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16", layout="mono")
        frame.sample_rate = 8000
        for packet in [*stream.encode(frame), *stream.encode()]:
            container.mux(packet)
    with pytest.raises(TDDetrInputError, match="sound.wav.*no video stream"):
        read_clip_frames(audio, 2.0)

    empty = tmp_path / "empty.avi"
    with av.open(str(empty), "w") as container:
        stream = container.add_stream("mpeg4", rate=4)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        container.start_encoding()
    with pytest.raises(TDDetrInputError, match="empty.avi.*zero duration"):
        read_clip_frames(empty, 2.0)


def test_video_features_are_projected_clip_image_embeddings_of_the_sampled_frames(encoder, clip_dir, video_path):
    from transformers import AutoImageProcessor, CLIPModel

    features = encoder.encode_video(video_path, clip_length=2.0)
    assert features.features.shape == (4, PROJECTION_DIM) and features.features.dtype == np.float32
    assert features.duration == pytest.approx(7.0) and features.clip_length == 2.0

    # independent path: the processor (resize + centre-crop 224) and CLIPModel.get_image_features
    frames = read_clip_frames(video_path, 2.0).frames
    processor = AutoImageProcessor.from_pretrained(clip_dir)
    pixels = processor(images=list(frames), return_tensors="pt")["pixel_values"]
    assert pixels.shape[-2:] == (224, 224)
    with torch.no_grad():
        expected = CLIPModel.from_pretrained(clip_dir).get_image_features(pixel_values=pixels)
    expected = getattr(expected, "pooler_output", expected)  # a ModelOutput in transformers 5, a tensor before
    np.testing.assert_allclose(features.features, expected.numpy(), rtol=1e-5, atol=1e-5)
    # frames of different gray levels give different features; batching does not change them
    assert np.abs(features.features[0] - features.features[3]).max() > 1e-3
    encoder.batch_size = 3
    try:
        np.testing.assert_allclose(encoder.encode_video(video_path, 2.0).features, features.features, atol=1e-6)
    finally:
        encoder.batch_size = 64


def test_text_features_are_the_unprojected_last_hidden_state_sot_to_eot(encoder, clip_dir):
    from transformers import AutoTokenizer, CLIPTextModel

    tokens = encoder.encode_text("a dog runs")
    tokenizer = AutoTokenizer.from_pretrained(clip_dir)
    ids = tokenizer("a dog runs", return_tensors="pt")["input_ids"]
    assert ids[0, 0] == tokenizer.bos_token_id and ids[0, -1] == tokenizer.eos_token_id
    # character-level vocabulary: 8 letters + SOT + EOT, and the width is the text tower's, not the projection's
    assert tokens.shape == (10, TEXT_HIDDEN_SIZE) == (ids.shape[1], TEXT_HIDDEN_SIZE)
    text_model = CLIPTextModel.from_pretrained(clip_dir)
    with torch.no_grad():
        expected = text_model(input_ids=ids).last_hidden_state[0]
    np.testing.assert_allclose(tokens, expected.numpy(), rtol=1e-5, atol=1e-5)
    # after the final layer norm (with its initial unit weight, zero bias): every row has zero mean, unit variance
    np.testing.assert_allclose(tokens.mean(axis=1), 0, atol=1e-5)

    batch = encoder.encode_text(["a dog runs", "cat"])  # padded batch: valid tokens do not see the padding
    assert [row.shape[0] for row in batch] == [10, 5]
    np.testing.assert_allclose(batch[0], tokens, atol=1e-5)
    np.testing.assert_allclose(batch[1], encoder.encode_text("cat"), atol=1e-5)
    with pytest.raises(TDDetrInputError, match="non-empty"):
        encoder.encode_text("  ")


def test_clip_loading_errors_and_reuse(tmp_path, encoder):
    with pytest.raises(TDDetrInputError, match="cannot load a CLIP model"):
        CLIPFeatureEncoder.from_pretrained(str(tmp_path / "no_such_model"))
    assert load_clip_encoder(encoder) is encoder
