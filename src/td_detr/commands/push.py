"""``td-detr push``: upload a saved TD-DETR model (weights, config, model card, metrics.json) to the Hugging Face Hub.

    td-detr push --model runs/qvh/best --repo-id my-org/td-detr-qvh [--private] [--token hf_...]

The endpoint follows ``HF_ENDPOINT``; the token defaults to ``HF_TOKEN`` / ``huggingface-cli login``.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

__all__ = ["add_parser", "run"]


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "push",
        help="upload a saved model (weights, config, model card, metrics.json) to the Hugging Face Hub",
        description=(
            "Upload a folder written by save_pretrained (config.json + *.safetensors) to a Hub model repo in one "
            "commit, with its metrics.json when present and a model card: the folder's README.md if it has one, "
            "otherwise a card generated from the config and metrics.json (model-index from the brief metrics)."
        ),
    )
    parser.add_argument("--model", required=True, type=Path, help="folder written by model.save_pretrained")
    parser.add_argument("--repo-id", required=True, help="Hub repo id, e.g. my-org/td-detr-qvh (created if missing)")
    parser.add_argument("--private", action="store_true", help="create the repo as private (ignored if it exists)")
    parser.add_argument("--token", default=None, help="Hub token (default: HF_TOKEN or the stored login)")
    parser.add_argument("--commit-message", default="Upload TD-DETR model", help="commit message")
    parser.add_argument(
        "--dataset", default=None,
        help="training data set for a generated card: qvhighlights or charades_sta (default: guessed from the "
        "metrics and clip length)",
    )
    parser.add_argument("--base-model", default=None, help="Hub id the model was fine-tuned from (for the card)")
    parser.set_defaults(func=run)
    return parser


def _transport_errors() -> tuple[type[BaseException], ...]:
    """Connection / timeout errors of the HTTP client huggingface_hub uses (httpx, or httpx2 in newer releases)."""
    errors: list[type[BaseException]] = [ConnectionError]
    for module in ("httpx2", "httpx"):
        try:
            errors.append(importlib.import_module(module).TransportError)
        except (ImportError, AttributeError):
            pass
    return tuple(errors)


def run(args: argparse.Namespace) -> int:
    from huggingface_hub import constants
    from huggingface_hub.errors import HfHubHTTPError

    from ..hub import push_model
    from ..hub_access import HubUnreachableError

    try:
        commit = push_model(
            args.model, args.repo_id, private=args.private, token=args.token, commit_message=args.commit_message,
            dataset_name=args.dataset, base_model=args.base_model,
        )
    except HfHubHTTPError as error:  # the Hub answered with an error (auth, permissions, bad request ...)
        print(f"td-detr push: error: the Hub refused the upload: {str(error).splitlines()[0]}", file=sys.stderr)
        return 1
    except HubUnreachableError as error:
        print(f"td-detr push: error: {error}", file=sys.stderr)
        return 1
    except _transport_errors() as error:
        print(f"td-detr push: error: cannot reach the Hub at {constants.ENDPOINT}: {error}", file=sys.stderr)
        return 1
    print(f"pushed {args.model} to {args.repo_id}: {commit.commit_url}")
    return 0
