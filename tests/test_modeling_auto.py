"""AutoModelForMomentRetrieval: transformers' auto machinery returns the model with its head, weights intact."""

import subprocess
import sys

import pytest
import torch
from transformers import AutoModel

from td_detr import AutoModelForMomentRetrieval, TDDetrForMomentRetrieval, TDDetrModel

from model_utils import random_batch, tiny_config


def test_from_pretrained_returns_the_head_model_with_every_weight(tmp_path, caplog):
    torch.manual_seed(0)
    model = TDDetrForMomentRetrieval(tiny_config()).eval()
    model.save_pretrained(tmp_path)
    loaded = AutoModelForMomentRetrieval.from_pretrained(tmp_path).eval()
    assert type(loaded) is TDDetrForMomentRetrieval
    batch = random_batch(model.config)
    with torch.no_grad():
        expected, actual = model(**batch), loaded(**batch)
    torch.testing.assert_close(actual.pred_spans, expected.pred_spans, rtol=0, atol=0)
    torch.testing.assert_close(actual.logits, expected.logits, rtol=0, atol=0)
    assert "UNEXPECTED" not in caplog.text and "newly initialized" not in caplog.text
    # AutoModel keeps transformers' convention: the head-less base model
    assert type(AutoModel.from_pretrained(tmp_path)) is TDDetrModel


def test_from_config_and_unknown_config_types():
    assert type(AutoModelForMomentRetrieval.from_config(tiny_config())) is TDDetrForMomentRetrieval
    from transformers import BertConfig

    with pytest.raises(ValueError, match="AutoModelForMomentRetrieval"):
        AutoModelForMomentRetrieval.from_config(BertConfig())


@pytest.mark.slow
def test_registered_by_importing_the_package_in_a_fresh_process(tmp_path):
    TDDetrForMomentRetrieval(tiny_config()).save_pretrained(tmp_path)
    code = ("import td_detr; m = td_detr.AutoModelForMomentRetrieval.from_pretrained(r'%s'); "
            "print(type(m).__name__)" % tmp_path)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "TDDetrForMomentRetrieval"
