"""The user's measure modules (analysis.plugins in a config): imported before any measure is looked up.

A plugin is a plain module that registers measures with analysis.measures.register, exactly as the
package's own measure modules do. Importing is idempotent (Python caches modules), so the driver's
preflight and every analysis worker may each call `load_plugins` with the same list.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType


class PluginError(ValueError):
    """A plugin that cannot be used; the message is one line and says what to fix."""


def load_plugins(modules: Sequence[str]) -> list[ModuleType]:
    """Import each plugin module (registering its measures); one-line PluginError on any failure."""
    import analysis.measures  # noqa: F401  the built-ins register first, so a clash names the plugin

    loaded = []
    for name in modules:
        try:
            loaded.append(importlib.import_module(name))
        except ModuleNotFoundError as err:
            if err.name and name.startswith(err.name):
                raise PluginError(f"analysis.plugins: cannot import {name!r}: no such module; put its folder on "
                                  "PYTHONPATH or install it") from None
            raise PluginError(f"analysis.plugins: {name!r} failed to import: {err}") from None
        except Exception as err:  # a name already registered, a syntax error, anything the module raises
            first = str(err).strip().splitlines()[0] if str(err).strip() else ""
            raise PluginError(f"analysis.plugins: {name!r} failed to import: {type(err).__name__}: {first}") from None
    return loaded


def plugin_paths(modules: Sequence[str]) -> list[str]:
    """What to ship to a cluster's workers for each plugin: its package folder or its .py file."""
    paths = []
    for module in load_plugins(modules):
        top = importlib.import_module(module.__name__.split(".")[0])
        file = Path(getattr(top, "__file__", None) or "")
        paths.append(str(file.parent if file.name == "__init__.py" else file))
    return paths
