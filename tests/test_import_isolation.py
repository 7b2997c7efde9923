"""The import graph holds at run time: the numpy-only modules and the command line load no torch, and `import td_detr`
registers the model with transformers' Auto classes whichever is imported first. Each case runs in a fresh
interpreter (this test process has torch loaded already)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from model_utils import tiny_config


def run_python(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "not registered" not in done.stderr, done.stderr[-3000:]
    return done.stdout


TORCH_FREE = ["td_detr.metrics", "td_detr.data.layout", "td_detr.data.labels", "td_detr.data.ground_truth",
              "td_detr.metrics.submission", "td_detr.cli"]


def test_numpy_only_modules_and_the_command_line_leave_torch_out():
    # One fresh interpreter; after each import (and after building `td-detr --help`) nothing heavy is loaded yet.
    out = run_python(f"""
        import importlib, sys
        heavy = ("torch", "datasets", "td_detr.modeling_td_detr")
        for name in {TORCH_FREE!r}:
            importlib.import_module(name)
            print(name, sorted(m for m in heavy if m in sys.modules))
        import td_detr
        td_detr.__version__
        from td_detr.cli import build_parser
        build_parser().format_help()
        print("help", sorted(m for m in heavy if m in sys.modules))
    """)
    assert out.splitlines() == [f"{name} []" for name in TORCH_FREE] + ["help []"]


@pytest.mark.slow  # loads torch in a fresh interpreter
def test_package_names_load_on_first_use():
    out = run_python("""
        import sys
        import td_detr
        before = "td_detr.configuration_td_detr" in sys.modules
        config_class = td_detr.TDDetrConfig
        print(before, config_class.__module__, "post_process_moment_retrieval" in dir(td_detr))
        try:
            td_detr.NoSuchName
        except AttributeError:
            print("AttributeError")
    """)
    assert out.split() == ["False", "td_detr.configuration_td_detr", "True", "AttributeError"]


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    from td_detr import TDDetrForMomentRetrieval

    folder = tmp_path_factory.mktemp("model")
    TDDetrForMomentRetrieval(tiny_config()).save_pretrained(folder)
    return folder


LOAD_WITH_AUTO = """
    config = AutoConfig.from_pretrained({folder!r})
    model = AutoModel.from_pretrained({folder!r})
    print(type(config).__name__, type(model).__name__, config.hidden_size)
"""


@pytest.mark.slow  # each case loads torch in a fresh interpreter
@pytest.mark.parametrize("first", [
    # the README's order: the package, then the Auto classes (the package alone must not load torch)
    "import td_detr\nimport sys\nassert 'torch' not in sys.modules\nfrom transformers import AutoConfig, AutoModel",
    # transformers' Auto classes already loaded when td_detr is imported
    "from transformers import AutoConfig, AutoModel\nimport td_detr",
    # a td_detr name used before the Auto classes
    "from td_detr import TDDetrConfig\nTDDetrConfig()\nfrom transformers import AutoConfig, AutoModel",
    # only a torch-free submodule imported
    "import td_detr.metrics\nfrom transformers import AutoConfig, AutoModel",
    # a module that imports transformers' Trainer first: transformers imports configuration_auto while modeling_utils
    # is half-imported, which is too early to import the modeling module
    "from td_detr.training import preset_for\nfrom transformers import AutoConfig, AutoModel",
], ids=["package-first", "transformers-first", "config-first", "submodule-only", "training-first"])
def test_auto_classes_find_a_saved_model_after_import_td_detr(saved_model, first):
    out = run_python(first + "\n" + textwrap.dedent(LOAD_WITH_AUTO).format(folder=str(saved_model)))
    assert out.split() == ["TDDetrConfig", "TDDetrModel", "16"]


@pytest.mark.slow
def test_without_td_detr_the_auto_classes_do_not_know_the_model(saved_model):
    # The positive cases above are only meaningful if registration is what makes them pass.
    out = run_python(f"""
        from transformers import AutoConfig
        try:
            AutoConfig.from_pretrained({str(saved_model)!r})
        except (ValueError, KeyError):
            print("unknown")
    """)
    assert out.strip() == "unknown"
