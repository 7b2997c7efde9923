import torch

from td_detr.modeling_td_detr import TDDetrMomentRetrievalOutput
from td_detr.postprocessing import post_process_moment_retrieval


def outputs_for(logits, spans, saliency, mask):
    return TDDetrMomentRetrievalOutput(
        logits=torch.tensor(logits), pred_spans=torch.tensor(spans), saliency_scores=torch.tensor(saliency),
        video_mask=torch.tensor(mask),
    )


def test_windows_are_sorted_denormalised_clamped_and_rounded():
    outputs = outputs_for(
        logits=[[[0.0, 2.0], [2.0, 0.0], [0.0, 0.0]]],
        spans=[[[0.5, 0.2], [0.95, 0.2], [0.1, 0.3]]],
        saliency=[[0.1, 0.2, 0.3, 9.0]],
        mask=[[1.0, 1.0, 1.0, 0.0]],
    )
    # spans are in units of the valid clips: 3 clips × 10 s = 30 s
    result = post_process_moment_retrieval(outputs, [30.0], clip_length=10.0, round_to_clip=False,
                                           min_window_clips=0)[0]  # windows under one 10-s clip stay as predicted
    windows = result["pred_relevant_windows"]
    assert [w[2] for w in windows] == sorted((w[2] for w in windows), reverse=True)
    best = windows[0]
    assert best[:2] == [25.5, 30.0]  # 0.85·30 .. 1.05·30 clamped to the duration
    assert windows[1][:2] == [0.0, 7.5]  # −0.05·30 clamped to 0
    assert windows[2][:2] == [12.0, 18.0]
    assert best[2] == round(torch.tensor([2.0, 0.0]).softmax(0)[0].item(), 4)
    assert result["pred_saliency_scores"] == [0.1, 0.2, 0.3] or all(
        abs(a - b) < 1e-6 for a, b in zip(result["pred_saliency_scores"], [0.1, 0.2, 0.3])
    )
    assert len(result["pred_saliency_scores"]) == 3


def test_rounding_to_the_clip_grid_is_half_to_even():
    outputs = outputs_for(
        logits=[[[1.0, 0.0]]], spans=[[[0.5, 0.2]]], saliency=[[0.0] * 5], mask=[[1.0] * 5]
    )
    # (0.4, 0.6) × 5 clips × 3 s = (6.0, 9.0): already on the 3-s grid
    window = post_process_moment_retrieval(outputs, [15.0], clip_length=3.0, round_to_clip=True)[0]["pred_relevant_windows"][0]
    assert window[:2] == [6.0, 9.0]
    # (0.25, 0.75) × 2 clips × 2 s = (1, 3) → /2 = (0.5, 1.5) → half to even → (0, 2) → (0, 4); half up would give (2, 4)
    outputs = outputs_for(logits=[[[1.0, 0.0]]], spans=[[[0.5, 0.5]]], saliency=[[0.0] * 2], mask=[[1.0] * 2])
    window = post_process_moment_retrieval(outputs, None, clip_length=2.0)[0]["pred_relevant_windows"][0]
    assert window[:2] == [0.0, 4.0]


def test_windows_are_in_seconds_of_the_given_clips_clamped_to_a_shorter_duration():
    outputs = outputs_for(logits=[[[1.0, 0.0]]], spans=[[[0.5, 1.0]]], saliency=[[0.0] * 4], mask=[[1.0] * 4])
    # the whole clip span: 4 clips × 2 s; a 400-s duration does not stretch it, a 7-s one clamps it
    assert post_process_moment_retrieval(outputs, [400.0], round_to_clip=False)[0]["pred_relevant_windows"][0][:2] == [0.0, 8.0]
    assert post_process_moment_retrieval(outputs, [7.0], round_to_clip=False)[0]["pred_relevant_windows"][0][:2] == [0.0, 7.0]


def test_every_window_spans_at_least_one_clip_inside_the_video():
    # beyond the end, before the start, and a video shorter than a clip: all collapse to a point when clamped
    outputs = outputs_for(
        logits=[[[3.0, 0.0], [2.0, 0.0], [1.0, 0.0]]], spans=[[[1.1, 0.1], [-0.2, 0.1], [0.5, 0.0]]],
        saliency=[[0.0] * 57], mask=[[1.0] * 57],
    )
    windows = post_process_moment_retrieval(outputs, [114.0], clip_length=2.0)[0]["pred_relevant_windows"]
    assert [w[:2] for w in windows] == [[112.0, 114.0], [0.0, 2.0], [56.0, 58.0]]
    official = post_process_moment_retrieval(outputs, [114.0], clip_length=2.0, min_window_clips=0)[0]
    assert [w[:2] for w in official["pred_relevant_windows"]] == [[114.0, 114.0], [0.0, 0.0], [56.0, 56.0]]
    short_video = post_process_moment_retrieval(outputs, [1.5], clip_length=2.0, round_to_clip=False)[0]
    assert all(w[:2] == [0.0, 1.5] for w in short_video["pred_relevant_windows"])


def test_official_clamp_is_0_to_150_seconds_and_the_config_selects_it():
    from td_detr import TDDetrForMomentRetrieval

    from model_utils import tiny_config

    def outputs_of(clips):
        return outputs_for(logits=[[[1.0, 0.0], [0.0, 1.0]]], spans=[[[0.9, 0.4], [0.1, 0.4]]],
                           saliency=[[0.0] * clips], mask=[[1.0] * clips])

    outputs = outputs_of(50)
    # 50 clips × 2 s: (0.7, 1.1) × 100 s = (70, 110); (−0.1, 0.3) × 100 s = (−10, 30)
    duration = post_process_moment_retrieval(outputs, [100.0], round_to_clip=False)[0]["pred_relevant_windows"]
    official = post_process_moment_retrieval(outputs, [100.0], round_to_clip=False, clamp="official")[0]
    assert [w[:2] for w in duration] == [[70.0, 100.0], [0.0, 30.0]]
    assert [w[:2] for w in official["pred_relevant_windows"]] == [[70.0, 110.0], [0.0, 30.0]]
    long = post_process_moment_retrieval(outputs_of(100), [200.0], clip_length=2.0, clamp="official")[0]
    assert long["pred_relevant_windows"][0][:2] == [140.0, 150.0]  # (140, 220) → 150
    model = TDDetrForMomentRetrieval(tiny_config(postprocess_clamp="official"))
    assert model.post_process(outputs, [100.0], round_to_clip=False) == [official]
