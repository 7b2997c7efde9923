"""Module-level lazy attributes (PEP 562): a package lists `{name: submodule}` and imports a submodule only when one of
its names is first used, so importing the package stays cheap."""

from __future__ import annotations

import importlib


def lazy_getattr(package: str, exports: dict[str, str], namespace: dict):
    """A module `__getattr__` that imports `package.<exports[name]>` on first use and caches the name in `namespace`."""

    def __getattr__(name: str):
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{exports[name]}"), name)
        namespace[name] = value
        return value

    return __getattr__
