"""`td-detr demo`: the answers behind the page (td_detr.demo.session), its figure, the served app through Gradio's
Python client, and the page in a real headless Chromium (Selenium; needs chromium + chromedriver, which .ci/run
installs)."""

from __future__ import annotations

import json
import os
import socket
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from td_detr.cli import main
from td_detr.demo.session import Answer, DemoSession, clip_saliency, load_local_clip

from model_utils import tiny_config
from script_utils import load_script
from training_utils import make_tiny_synthetic, write_tiny_config
from video_utils import PROJECTION_DIM, TEXT_HIDDEN_SIZE, save_tiny_clip, write_test_video

gr = pytest.importorskip("gradio")
gradio_client = pytest.importorskip("gradio_client")

MISSING_CLIP = "td-detr-tests/no-such-clip"  # a Hub name that is in no cache: the demo must say so, offline


def flat(values) -> list[float]:
    """Nested numbers as one flat list (pytest.approx compares flat sequences only)."""
    return np.asarray(values, dtype=np.float64).ravel().tolist()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def demo_args(*flags):
    from td_detr.cli import build_parser

    return build_parser().parse_args(["demo", *flags])


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    data = make_tiny_synthetic(root / "data", size=24)
    output = root / "model"
    assert main(["train", "--dataset", "synthetic", "--data-dir", str(data), "--config",
                 str(write_tiny_config(root / "tiny.json")), "--max-steps", "3", "--batch-size", "8",
                 "--output-dir", str(output), "--cache-dir", str(root / "cache")]) == 0
    return root, data, output


@pytest.fixture(scope="module")
def synthetic_session(workspace):
    from td_detr.commands.demo import build_session

    root, data, model = workspace
    return build_session(demo_args("--model", str(model), "--dataset", "synthetic", "--data-dir", str(data),
                                   "--cache-dir", str(root / "cache"), "--clip-model", MISSING_CLIP))


@pytest.fixture(scope="module")
def served(synthetic_session, workspace):
    """The synthetic demo served on a free port: (url, session)."""
    from td_detr.demo.app import build_demo, launch

    demo = build_demo(synthetic_session, str(workspace[2]), top_k=5)
    url = launch(demo, port=free_port(), block=False)
    yield url, synthetic_session
    demo.close()


def test_a_data_set_query_is_answered_as_evaluate_predicts_it(synthetic_session, workspace, tmp_path):
    root, data, model = workspace
    assert main(["evaluate", "--model", str(model), "--dataset", "synthetic", "--data-dir", str(data),
                 "--output-dir", str(tmp_path), "--cache-dir", str(root / "cache")]) == 0
    expected = [json.loads(line) for line in (tmp_path / "predictions.jsonl").read_text().splitlines()]
    truth = {r["qid"]: r for r in map(json.loads, (data / "validation.jsonl").read_text().splitlines())}
    assert [qid for _, qid in synthetic_session.query_choices()] == [r["qid"] for r in expected]
    for record in expected[:3]:
        answer = synthetic_session.answer_qid(record["qid"])
        assert flat(answer.windows) == pytest.approx(flat(record["pred_relevant_windows"]))
        assert answer.saliency == pytest.approx(record["pred_saliency_scores"], abs=1e-6)  # batch of 1 vs 6
        assert answer.ground_truth == truth[record["qid"]]["relevant_windows"]
        start, end = answer.windows[0][:2]
        ious = [max(0.0, min(end, e) - max(start, s)) / (max(end, e) - min(start, s)) for s, e in answer.ground_truth]
        assert answer.metrics()["top_iou"] == pytest.approx(max(ious))


def test_metrics_of_a_known_answer():
    answer = Answer(query="q", windows=[[10, 20, 0.9], [0, 4, 0.5], [12, 20, 0.4]], saliency=[0, 0, 0, 0, 0, 1, 0],
                    clip_length=2.0, duration=14.0, ground_truth=[[12.0, 20.0], [0.0, 2.0]])
    assert answer.window_ious() == pytest.approx([0.8, 0.5, 1.0])
    assert answer.metrics() == {"top_iou": pytest.approx(0.8), "R1@0.5": True, "R1@0.7": True, "first_hit@0.7": 1,
                                "top_clip_relevant": False}  # the most salient clip, 5, is centred at 11 s
    answer.saliency = [1, 0, 0, 0, 0, 0, 0]  # clip 0, centre 1 s, inside [0, 2]
    assert answer.metrics()["top_clip_relevant"]
    answer.ground_truth = [[14.0, 20.0]]
    assert answer.metrics() == {"top_iou": pytest.approx(0.6), "R1@0.5": True, "R1@0.7": False,
                                "first_hit@0.7": 3, "top_clip_relevant": False}
    assert Answer(query="free", windows=[[0, 2, 0.5]], saliency=[1.0], clip_length=2.0, duration=2.0).metrics() == {}


def test_clip_saliency_is_the_annotators_mean_per_clip():
    row = {"relevant_clip_ids": [2, 3, 9], "saliency_scores": [[1, 2, 3], [4, 4, 4], [2, 2, 2]]}
    assert clip_saliency(row, 5) == [0, 0, 2, 4, 0]  # clip 9 lies past the 5 predicted clips
    assert clip_saliency({"relevant_clip_ids": []}, 5) is None


def test_free_text_and_videos_say_why_they_are_off(synthetic_session):
    assert "synthetic" in synthetic_session.free_text_problem
    with pytest.raises(Exception, match="free-text queries are off"):
        synthetic_session.answer_text(synthetic_session.query_choices()[0][1], "a woman is baking")
    assert "no CLIP weights" in synthetic_session.video_problem and "never downloads" in synthetic_session.video_problem


def test_the_timeline_figure_has_one_lane_per_window_and_the_ground_truth(synthetic_session):
    from td_detr.demo.figure import timeline_figure

    qid = synthetic_session.query_choices()[0][1]
    answer = synthetic_session.answer_qid(qid)
    lanes, curve = timeline_figure(answer, top_k=3).axes[:2]
    assert [label.get_text() for label in lanes.get_yticklabels()] == ["ground truth", "#1", "#2", "#3"]
    bars = [(p.get_x(), p.get_x() + p.get_width()) for p in lanes.patches]
    assert flat(bars) == pytest.approx(flat([w[:2] for w in answer.ground_truth + answer.windows[:3]]))
    assert list(curve.lines[0].get_ydata()) == pytest.approx(answer.saliency)


def test_the_served_app_answers_through_the_python_client(served):
    from gradio_client import Client

    url, session = served
    client = Client(url, verbose=False, analytics_enabled=False, download_files=False)
    qid = session.query_choices()[2][1]
    _, table, metrics, record = client.predict(qid, api_name="/show_query")
    answer = session.answer_qid(qid)
    assert record["qid"] == qid and flat(record["pred_relevant_windows"]) == pytest.approx(flat(answer.windows))
    assert record["metrics"]["top_iou"] == pytest.approx(answer.metrics()["top_iou"])
    assert flat([row[:4] for row in table["data"]]) == pytest.approx(
        flat([[rank, round(s, 2), round(e, 2), round(score, 4)] for rank, (s, e, score) in enumerate(answer.windows, 1)]))
    assert f"{answer.metrics()['top_iou']:.2f}" in metrics
    with pytest.raises(Exception, match="choose a query from the list"):  # a gr.Error, not a traceback
        client.predict(None, api_name="/show_query")


def test_the_page_says_when_there_are_no_clip_weights(served):
    import httpx

    config = httpx.get(served[0] + "config", timeout=30).text
    assert "no CLIP weights for" in config and MISSING_CLIP in config and "Traceback" not in config


@pytest.fixture(scope="module")
def clip_world(tmp_path_factory):
    """A tiny random CLIP, a generated video in a folder, and an untrained TD-DETR sized for CLIP features alone."""
    root = tmp_path_factory.mktemp("demo_video")
    clip = save_tiny_clip(root / "clip")
    videos = root / "videos"
    videos.mkdir()
    video = write_test_video(videos / "kitchen.mp4", seconds=7, fps=4)
    torch.manual_seed(0)
    from td_detr import TDDetrForMomentRetrieval

    model = TDDetrForMomentRetrieval(tiny_config(video_feature_size=PROJECTION_DIM, text_feature_size=TEXT_HIDDEN_SIZE,
                                                 max_video_length=8, clip_length=2.0)).eval()
    return clip, videos, video, model


def test_free_text_on_a_data_set_video_with_a_clip_text_encoder(clip_world):
    import datasets

    from td_detr.processing_td_detr import l2_normalize_rows

    clip, _, video, model = clip_world
    encoder, problem = load_local_clip(str(clip), model.config)
    assert problem is None
    features = l2_normalize_rows(encoder.encode_video(video, 2.0).features)
    rows = [{"qid": 7, "vid": "kitchen", "query": "a gray frame", "duration": 7.0, "video_features": features.tolist(),
             "text_features": l2_normalize_rows(encoder.encode_text("a gray frame")).tolist(),
             "relevant_windows": [[2.0, 6.0]]}]
    session = DemoSession(model, dataset=datasets.Dataset.from_list(rows), data_name="clip data",
                          clip_encoder=encoder, video_dir=str(video.parent))
    assert session.free_text_problem is None
    answer = session.answer_text(7, "  the fridge opens ")
    text = l2_normalize_rows(encoder.encode_text("the fridge opens"))[: model.config.max_query_length]
    with torch.no_grad():
        outputs = model(video_features=torch.from_numpy(features)[None], video_mask=torch.ones(1, len(features)),
                        text_features=torch.from_numpy(text)[None], text_mask=torch.ones(1, len(text)))
    expected = model.post_process(outputs, [7.0])[0]
    assert answer.query == "the fridge opens" and answer.ground_truth == [] and answer.metrics() == {}
    assert flat(answer.windows) == pytest.approx(flat(expected["pred_relevant_windows"]), abs=1e-5)
    assert answer.saliency == pytest.approx(expected["pred_saliency_scores"], abs=1e-5)
    assert answer.video_path == str(video)  # the player gets the data set video from --video-dir


def test_a_clip_model_that_does_not_fit_is_refused_with_a_reason(clip_world, synthetic_session):
    clip = clip_world[0]
    encoder, problem = load_local_clip(str(clip), synthetic_session.config)  # 16-d CLIP text, the model reads 32-d
    assert encoder is None and "16-d text features" in problem and "32-d" in problem


def test_the_video_tab_answers_a_video_file_through_the_client(clip_world):
    from gradio_client import Client, handle_file

    from td_detr.demo.app import build_demo, launch
    from td_detr.pipeline import moment_retrieval_pipeline

    clip, videos, video, model = clip_world
    encoder, _ = load_local_clip(str(clip), model.config)
    session = DemoSession(model, clip_encoder=encoder, video_dir=str(videos))
    assert session.video_problem is None and session.video_choices() == [str(video)]
    demo = build_demo(session, "tiny", top_k=3)
    url = launch(demo, port=free_port(), block=False, allowed_paths=[str(videos)])
    try:
        client = Client(url, verbose=False, analytics_enabled=False, download_files=False)
        _, table, _, record = client.predict(handle_file(str(video)), "a gray frame",
                                             api_name="/find_moments")
    finally:
        demo.close()
    expected = moment_retrieval_pipeline(model, clip_model=encoder)(str(video), "a gray frame")
    assert flat(record["pred_relevant_windows"]) == pytest.approx(
        flat([[w["start"], w["end"], w["score"]] for w in expected["windows"]]), abs=1e-5)
    assert record["duration"] == pytest.approx(expected["duration"]) and len(table["data"]) == 3


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--port", "70000"], "--port 70000"),
        (["--video-dir", "no/such/folder"], "--video-dir no/such/folder is not a folder"),
        (["--top-k", "0"], "--top-k must be a positive number, got 0"),
    ],
)
def test_bad_flags_exit_2_before_loading_anything(flags, message, capsys):
    assert main(["demo", "--model", "no/such/model", *flags]) == 2
    error = capsys.readouterr().err.strip()
    assert message in error and len(error.splitlines()) == 1


def test_without_the_extra_the_command_says_how_to_install_it(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "gradio", None)  # import gradio now raises ImportError
    assert main(["demo", "--model", "no/such/model"]) == 2
    error = capsys.readouterr().err.strip()
    assert error == "td-detr demo: error: the demo needs Gradio, which is not installed: pip install 'td-detr[demo]'"


@pytest.mark.slow  # a Chromium process
def test_the_page_in_a_headless_browser(served, tmp_path):
    """Chromium opens the page, a query is chosen from the searchable list, and the windows table and the timeline
    appear; the screenshot is kept under $TD_DETR_TEST_ARTIFACTS (else the test's tmp folder)."""
    pytest.importorskip("selenium")
    screenshot = load_script("demo_screenshot")
    if screenshot.chromium_paths() is None:
        pytest.skip("needs chromium and chromedriver (apt-get install chromium chromium-driver; .ci/run does)")
    url, session = served
    label, qid = session.query_choices()[1]
    answer = session.answer_qid(qid)
    driver = screenshot.open_browser()
    try:
        found = screenshot.choose_query(driver, url, label)
        artefacts = Path(os.environ.get("TD_DETR_TEST_ARTIFACTS") or tmp_path)
        path = screenshot.save_small_png(driver.get_screenshot_as_png(), artefacts / "demo-page.png")
        cells = [[cell.text for cell in row.find_elements("css selector", "[role=gridcell]")] for row in found["rows"]]
        plot_source = found["plot"].get_attribute("src")
    finally:
        driver.quit()
    assert flat([row[1:4] for row in cells]) == pytest.approx(
        flat([[round(s, 2), round(e, 2), round(score, 4)] for s, e, score in answer.windows[:5]]))
    assert plot_source.startswith("data:image/png;base64,") and len(plot_source) > 10_000
    assert f"IoU of the top window with the ground truth: {answer.metrics()['top_iou']:.2f}" in found["metrics"]
    assert path.stat().st_size > 10_000


@pytest.mark.slow  # a Chromium process
def test_clicking_a_window_seeks_the_video_player(clip_world):
    """Video tab in Chromium: upload the video, ask, click the window that starts last: the player jumps there."""
    pytest.importorskip("selenium")
    screenshot = load_script("demo_screenshot")
    if screenshot.chromium_paths() is None:
        pytest.skip("needs chromium and chromedriver (apt-get install chromium chromium-driver; .ci/run does)")
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from td_detr.demo.app import build_demo, launch

    clip, videos, video, model = clip_world
    encoder, _ = load_local_clip(str(clip), model.config)
    demo = build_demo(DemoSession(model, clip_encoder=encoder), "tiny", top_k=3)
    url = launch(demo, port=free_port(), block=False)
    driver = screenshot.open_browser()
    try:
        wait = WebDriverWait(driver, 60)
        driver.get(url)
        wait.until(lambda d: [t for t in d.find_elements(By.CSS_SELECTOR, "button[role=tab]")
                              if t.text == "Video file"])[0].click()
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#video-player input[type=file]"))[0].send_keys(
            str(video))
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#video-player video"))
        driver.find_element(By.CSS_SELECTOR, "textarea[placeholder^='e.g. a man']").send_keys("a gray frame")
        [b for b in driver.find_elements(By.TAG_NAME, "button") if b.text == "Find moments"][0].click()
        rows = wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#video-windows [role=row].virtual-row") or False)
        cells = [row.find_elements(By.CSS_SELECTOR, "[role=gridcell]") for row in rows]
        latest = max(cells, key=lambda row: float(row[1].text))  # the window that starts last
        start = float(latest[1].text)
        position = "return document.querySelector('#video-player video').currentTime"
        assert start >= 2 and driver.execute_script(position) < 0.5  # so that a seek is visible
        latest[2].click()
        wait.until(lambda d: abs(d.execute_script(position) - start) < 0.05)
    finally:
        driver.quit()
        demo.close()
