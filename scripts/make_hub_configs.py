"""Generate the committed hub configs from `td_detr.hub.HUB_PRESETS` (built from `td_detr.registry.DATA_SETS`), the
files uploaded with a checkpoint; they are output, never edited by hand (`load_hub_config(NAME)` builds the config
from the registry itself).

For every preset NAME it writes
  hub_configs/NAME/config.json              the config (every TD-DETR field, no transformers_version)
  hub_configs/NAME/README.md                its model card (model-index from hub_configs/NAME/metrics.json if present)

    python scripts/make_hub_configs.py            # (re)write
    python scripts/make_hub_configs.py --check    # exit 1 and list the stale files, write nothing
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from td_detr.hub import HUB_PRESETS, build_model_card, read_metrics

ROOT = Path(__file__).resolve().parents[1]


def config_json(config) -> str:
    values = json.loads(config.to_json_string(use_diff=True))
    values.pop("transformers_version", None)  # keeps the files stable across transformers releases
    return json.dumps(values, indent=2, sort_keys=True) + "\n"


def expected_files(namespace: str) -> dict[Path, str]:
    files = {}
    for name, preset in HUB_PRESETS.items():
        config = preset.make_config()
        text = config_json(config)
        metrics_path = ROOT / "hub_configs" / name / "metrics.json"
        metrics = read_metrics(metrics_path) if metrics_path.is_file() else None
        card = build_model_card(config, metrics, dataset_name=preset.dataset_name, model_id=f"{namespace}/{name}")
        files[ROOT / "hub_configs" / name / "config.json"] = text
        files[ROOT / "hub_configs" / name / "README.md"] = str(card).rstrip("\n") + "\n"
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="only report files that differ; exit 1 if any")
    parser.add_argument("--namespace", default="your-org", help="Hub namespace shown in the cards (default your-org)")
    args = parser.parse_args(argv)

    stale = []
    for path, text in expected_files(args.namespace).items():
        if path.is_file() and path.read_text(encoding="utf-8") == text:
            continue
        stale.append(path)
        if not args.check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
    for path in stale:
        print(f"{'stale' if args.check else 'wrote'} {path.relative_to(ROOT)}")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
