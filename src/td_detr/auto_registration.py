"""Registering the model type ``td_detr`` with transformers' ``AutoConfig`` / ``AutoModel`` without importing torch.

:mod:`td_detr.modeling_td_detr` registers both classes when it is imported (transformers' recipe for a model outside
the library). ``import td_detr`` must not import it (``td_detr.metrics`` and ``td_detr.data.layout`` stay torch-free,
and the Auto classes themselves load torch), yet ``import td_detr`` followed by ``AutoModel.from_pretrained(folder)``
must find the model. So ``import td_detr`` imports the modeling module right after transformers' Auto package
(``transformers.models.auto``) is imported, or at once when it already is: the registration costs nothing until the
Auto classes are used.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings

AUTO_PACKAGE = "transformers.models.auto"
MODELING_MODULE = "td_detr.modeling_td_detr"


def _import_modeling() -> None:
    if MODELING_MODULE in sys.modules:  # imported, or being imported right now: it registers at its end
        return
    try:
        importlib.import_module(MODELING_MODULE)
    except Exception as error:  # a broken td_detr must not break transformers' Auto classes for everything else
        warnings.warn(f"td_detr is not registered with AutoConfig / AutoModel: {error!r}", stacklevel=2)


class _AfterAutoPackageImport(importlib.abc.MetaPathFinder):
    """Finds no module itself: hands back the regular spec of :data:`AUTO_PACKAGE` with a loader that imports the
    modeling module once the package has run. Removes itself on first use."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != AUTO_PACKAGE:
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None:
            return spec
        exec_module = spec.loader.exec_module

        def exec_module_then_register(module):
            exec_module(module)
            _import_modeling()

        spec.loader.exec_module = exec_module_then_register  # this spec's own loader object only
        return spec


def register_with_auto_classes() -> None:
    """Make ``td_detr`` known to ``AutoConfig`` / ``AutoModel``: now if transformers' Auto package is loaded, else as
    soon as it is."""
    if AUTO_PACKAGE in sys.modules:
        _import_modeling()
    elif not any(isinstance(finder, _AfterAutoPackageImport) for finder in sys.meta_path):
        sys.meta_path.insert(0, _AfterAutoPackageImport())
