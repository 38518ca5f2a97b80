"""Model families by name: every module in this package that defines ``FAMILY`` is one.

Adding a family is adding a module here (and its tests); nothing else lists
them. Modules are imported on first use, and must import only numpy at module
level so a predict worker stays free of scikit-learn.
"""
from __future__ import annotations

import importlib
import pkgutil

from shared.model.base import ModelFamily

DEFAULT = "svc"
_registry: dict[str, ModelFamily] = {}
_discovered = False


class UnknownFamily(KeyError):
    """No family of that name is installed (e.g. a model written by a newer release)."""


def _discover() -> None:
    global _discovered
    if _discovered:
        return
    _discovered = True
    for info in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"{__name__}.{info.name}")
        family = getattr(module, "FAMILY", None)
        if isinstance(family, ModelFamily):
            _registry.setdefault(family.name, family)


def register(family: ModelFamily) -> ModelFamily:
    """Make ``family`` known by its name (discovery calls this; so may a test)."""
    _registry[family.name] = family
    return family


def get(name: str | None = None) -> ModelFamily:
    _discover()
    try:
        return _registry[name or DEFAULT]
    except KeyError:
        raise UnknownFamily(f"no model family {name!r} (installed: {', '.join(sorted(_registry))})") from None


def names() -> list[str]:
    _discover()
    return sorted(_registry)
