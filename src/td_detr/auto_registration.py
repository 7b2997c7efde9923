"""Registering the model type ``td_detr`` with transformers' ``AutoConfig`` / ``AutoModel`` without importing torch.

:mod:`td_detr.modeling_td_detr` registers both classes when it is imported (transformers' recipe for a model outside
the library). ``import td_detr`` must not import it (``td_detr.metrics`` and ``td_detr.data.layout`` stay torch-free,
and the Auto classes themselves load torch), yet ``import td_detr`` followed by ``AutoModel.from_pretrained(folder)``
must find the model. So ``import td_detr`` registers each Auto class right after the transformers module that
defines it has run: the config once ``configuration_auto`` is imported, the model once ``modeling_auto`` is, or at once
for a module already imported.

Why two modules and not the Auto package: transformers imports ``configuration_auto`` while ``modeling_utils`` is
still half-imported (``modeling_utils`` → quantizers → ``AutoConfig``), so importing the modeling module at that point
fails (``PreTrainedModel`` does not exist yet) and nothing was registered. ``modeling_auto`` is only imported by code
that uses the Auto model classes, after ``modeling_utils`` has run.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings

CONFIG_AUTO_MODULE = "transformers.models.auto.configuration_auto"
MODEL_AUTO_MODULE = "transformers.models.auto.modeling_auto"


def _register_config() -> None:
    from .configuration_td_detr import TDDetrConfig

    sys.modules[CONFIG_AUTO_MODULE].AutoConfig.register(TDDetrConfig.model_type, TDDetrConfig, exist_ok=True)


def _register_model() -> None:
    importlib.import_module("td_detr.modeling_td_detr")  # registers AutoConfig and AutoModel at its end


REGISTRATIONS = {CONFIG_AUTO_MODULE: _register_config, MODEL_AUTO_MODULE: _register_model}


def _register(module_name: str) -> None:
    try:
        REGISTRATIONS[module_name]()
    except Exception as error:  # a broken td_detr must not break transformers' Auto classes for everything else
        warnings.warn(f"td_detr is not registered with {module_name}: {error!r}", stacklevel=2)


class _AfterAutoModuleImport(importlib.abc.MetaPathFinder):
    """Finds no module itself: hands back the regular spec of a module in :data:`REGISTRATIONS` with a loader that
    registers td_detr once the module has run. Stops watching a module after its first import."""

    def __init__(self, module_names):
        self.waiting = set(module_names)

    def find_spec(self, fullname, path=None, target=None):
        if fullname not in self.waiting:
            return None
        self.waiting.discard(fullname)
        if not self.waiting:
            sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None:
            return spec
        exec_module = spec.loader.exec_module

        def exec_module_then_register(module):
            exec_module(module)
            _register(fullname)

        spec.loader.exec_module = exec_module_then_register  # this spec's own loader object only
        return spec


def register_with_auto_classes() -> None:
    """Make ``td_detr`` known to ``AutoConfig`` / ``AutoModel``: now for an Auto module already imported, else as soon
    as it is."""
    if any(isinstance(finder, _AfterAutoModuleImport) for finder in sys.meta_path):
        return
    waiting = []
    for module_name in REGISTRATIONS:
        if module_name in sys.modules:
            _register(module_name)
        else:
            waiting.append(module_name)
    if waiting:
        sys.meta_path.insert(0, _AfterAutoModuleImport(waiting))
