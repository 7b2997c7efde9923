"""The demo page (Gradio Blocks) over a `DemoSession`: a "Data set queries" tab (searchable list of the split's
queries, free text on the chosen video when a text encoder fits) and a "Video file" tab (upload or choose a video,
type a query). Both show the same answer: the timeline figure, the top windows table (clicking a row seeks the video
player to that window), the query's metrics and the raw record.

Endpoints for `gradio_client`: ``/show_query`` (qid), ``/ask`` (qid, text) and ``/find_moments`` (video, text); each
returns (figure, windows table, metrics markdown, [video,] record)."""

from __future__ import annotations

import functools

import gradio as gr

from ..errors import TDDetrInputError
from .figure import timeline_figure
from .session import Answer, DemoSession

WINDOW_HEADERS = ["rank", "start (s)", "end (s)", "score", "IoU with ground truth"]
CSS = """
.gradio-container {max-width: 1280px !important; margin: auto;}
#dataset-metrics, #video-metrics {font-size: 0.95em;}
.note {color: #6b6b6b; font-size: 0.92em;}
"""
# Runs in the browser after a row of a windows table was clicked: seek the player to the window's start (paused,
# so the window's first frame shows; play goes on from there).
SEEK_JS = """(start) => {{
  const player = document.querySelector('#{player} video');
  if (player && start !== null && start !== undefined) {{ player.currentTime = start; }}
  return start;
}}"""


def theme():
    """Gradio's default theme with local fonts only (its default already uses no web fonts), so the page renders
    without any network."""
    return gr.themes.Default(primary_hue="orange", secondary_hue="blue", neutral_hue="slate")


def _page_errors(function):
    """Bad requests show as a message in the page (gr.Error), not a traceback."""
    @functools.wraps(function)
    def wrapped(*args):
        try:
            return function(*args)
        except TDDetrInputError as error:
            raise gr.Error(str(error)) from None
    return wrapped


def windows_table(answer: Answer, top_k: int) -> list[list]:
    ious = answer.window_ious()
    return [[rank, round(start, 2), round(end, 2), round(score, 4), None if ious is None else round(ious[rank - 1], 3)]
            for rank, (start, end, score) in enumerate(answer.windows[:top_k], 1)]


def metrics_markdown(answer: Answer) -> str:
    start, end, score = answer.windows[0]
    lines = [f"**Top window** {start:.1f} – {end:.1f} s (score {score:.2f})"]
    metrics = answer.metrics()
    if metrics:
        def mark(hit):
            return "**hit**" if hit else "**miss**"

        truth = ", ".join(f"{s:.1f} – {e:.1f} s" for s, e in answer.ground_truth)
        first = metrics["first_hit@0.7"]
        lines += [
            f"**IoU of the top window with the ground truth: {metrics['top_iou']:.2f}**",
            f"`R1@0.5` {mark(metrics['R1@0.5'])} · `R1@0.7` {mark(metrics['R1@0.7'])} · first window with "
            f"IoU ≥ 0.7: " + (f"#{first}" if first else "none in the top windows"),
            "Most salient clip inside a ground-truth window: " + ("yes" if metrics["top_clip_relevant"] else "no"),
            f"Ground truth: {truth}",
        ]
    else:
        lines.append("No ground truth for a free-text query: compare with the saliency curve.")
    return "\n\n".join(lines)


def render(answer: Answer, top_k: int):
    """(figure, windows table, metrics markdown, record) of an answer."""
    return timeline_figure(answer, top_k), windows_table(answer, top_k), metrics_markdown(answer), answer.record()


def _answer_outputs(prefix: str, video_label: str | None):
    """The components that show an answer; the video player (when given a label) is an output too."""
    plot = gr.Plot(label="Timeline: ground truth vs. predicted windows, and the saliency curve", format="png",
                   show_label=False, elem_id=f"{prefix}-plot")
    with gr.Row():
        with gr.Column(scale=3):
            table = gr.Dataframe(headers=WINDOW_HEADERS, interactive=False, elem_id=f"{prefix}-windows",
                                 label="Top windows (click a row to show it in the video)")
        with gr.Column(scale=2):
            metrics = gr.Markdown(elem_id=f"{prefix}-metrics")
    video = gr.Video(label=video_label, interactive=False, elem_id=f"{prefix}-player") if video_label else None
    with gr.Accordion("Prediction record (JSON)", open=False):
        record = gr.JSON()
    return plot, table, metrics, video, record


def _wire_seek(table, player_id: str) -> None:
    seek = gr.Number(visible=False)

    def window_start(event: gr.SelectData):
        return float(event.row_value[1]) if event.row_value else None

    table.select(window_start, None, seek, api_visibility="private").then(
        None, seek, None, js=SEEK_JS.format(player=player_id))


def _dataset_tab(session: DemoSession, top_k: int) -> None:
    if session.dataset is None:
        gr.Markdown("No data set was given: start the demo with `--data-dir D`, `--dataset NAME --data-dir D` or "
                    "`--eval-file F` with the feature flags to browse a data set's queries.")
        return
    choices = session.query_choices()
    query = gr.Dropdown(choices=choices, value=None, filterable=True, elem_id="query-list",
                        label=f"Query of {session.data_name} ({len(choices)}; type to search: qid, video or words)")
    problem = session.free_text_problem
    if problem:
        gr.Markdown(f"Free-text queries are off: {problem}.", elem_classes="note", elem_id="free-text-note")
    else:
        with gr.Row(equal_height=True):
            text = gr.Textbox(label="Or type your own query about the chosen video", scale=5,
                              placeholder="e.g. a woman is baking")
            ask = gr.Button("Ask", variant="primary", scale=1)
    video_label = "Video (from --video-dir)" if session.video_dir else None
    plot, table, metrics, video, record = _answer_outputs("dataset", video_label)
    outputs = [plot, table, metrics] + ([video] if video else []) + [record]

    def shown(answer: Answer):
        figure, rows, markdown, data = render(answer, top_k)
        if video is None:
            return figure, rows, markdown, data
        if answer.video_path is None:
            markdown += f"\n\nNo video file for `{answer.vid}` in {session.video_dir}."
        return figure, rows, markdown, answer.video_path, data

    @_page_errors
    def show_query(qid):
        if qid is None:
            raise TDDetrInputError("choose a query from the list")
        return shown(session.answer_qid(qid))

    @_page_errors
    def ask_text(qid, words):
        if qid is None:
            raise TDDetrInputError("choose a query first: its video is the one the free-text query searches")
        return shown(session.answer_text(qid, words))

    query.change(show_query, query, outputs, api_name="show_query")
    if not problem:
        ask.click(ask_text, [query, text], outputs, api_name="ask")
        text.submit(ask_text, [query, text], outputs, api_visibility="private")
    if video is not None:
        _wire_seek(table, "dataset-player")


def _video_tab(session: DemoSession, top_k: int) -> None:
    problem = session.video_problem
    if problem:
        gr.Markdown(f"**Video files are off:** {problem}.", elem_id="video-off-note")
        return
    with gr.Row():
        with gr.Column(scale=3):
            player = gr.Video(label="Video (upload, or choose one below)", sources=["upload"], elem_id="video-player")
            files = session.video_choices()
            if files:
                chosen = gr.Dropdown(choices=files, value=None, label=f"Videos in {session.video_dir}")
                chosen.change(lambda path: path, chosen, player, api_visibility="private")
        with gr.Column(scale=2):
            text = gr.Textbox(label="Query", placeholder="e.g. a man opens the fridge")
            find = gr.Button("Find moments", variant="primary")
    plot, table, metrics, _, record = _answer_outputs("video", None)

    @_page_errors
    def find_moments(path, words):
        return render(session.answer_video(path, words), top_k)

    find.click(find_moments, [player, text], [plot, table, metrics, record], api_name="find_moments")
    text.submit(find_moments, [player, text], [plot, table, metrics, record], api_visibility="private")
    _wire_seek(table, "video-player")


def build_demo(session: DemoSession, model_name: str, top_k: int = 5) -> gr.Blocks:
    """The page (not launched)."""
    config = session.config
    parameters = sum(p.numel() for p in session.model.parameters())
    with gr.Blocks(title="td-detr demo", analytics_enabled=False) as demo:
        gr.Markdown(
            f"## TD-DETR moment retrieval\n`{model_name}` · {parameters / 1e6:.2f} M parameters · "
            f"{config.video_feature_size}-d video / {config.text_feature_size}-d text features · "
            f"{config.clip_length:g}-s clips"
            + (f" · data: {session.data_name}" if session.data_name else "")
            + "\n\nChoose a query: the timeline shows the ground truth (green) against the model's top windows "
            "(orange, best first, with score and IoU), above the model's per-clip saliency."
        )
        with gr.Tabs():
            with gr.Tab("Data set queries"):
                _dataset_tab(session, top_k)
            with gr.Tab("Video file"):
                _video_tab(session, top_k)
    demo.queue(default_concurrency_limit=1)  # one model on the CPU: answer requests one at a time
    return demo


def launch(demo: gr.Blocks, host: str = "127.0.0.1", port: int | None = None, share: bool = False,
           allowed_paths=(), block: bool = True) -> str:
    """Serve the page and return its address (blocks until Ctrl+C when ``block``)."""
    try:
        _, url, share_url = demo.launch(server_name=host, server_port=port, share=share, prevent_thread_lock=True,
                                        quiet=True, show_error=True, allowed_paths=list(allowed_paths),
                                        theme=theme(), css=CSS)
    except OSError as error:
        raise TDDetrInputError(f"--port {port}: cannot serve on {host}:{port} ({error})") from None
    print(f"td-detr demo: serving on {url}" + (f" and {share_url}" if share_url else "") + " (Ctrl+C stops)", flush=True)
    if block:
        demo.block_thread()
    return url
