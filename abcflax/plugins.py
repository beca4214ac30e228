"""Plugins: exporters and importers contributed through pluggy hooks.

Built-in plugins (``abcflax_plugins.exporters``, ``abcflax_plugins.music21_abc``) implement the same hooks as
third-party ones but are registered directly, so they load even when entry points are stale or filtered.
Third-party plugins come from the entry-point group ``abcflax``::

    [project.entry-points.abcflax]
    my_format = "my_package.abcflax_plugin"

A plugin module implements one or both hooks with ``@abcflax.plugins.hookimpl``::

    @hookimpl
    def register_exporters(register):
        register("ly", (".ly",), write_lilypond, binary=False, description="LilyPond")

The environment variable ``ABCFLAX_PLUGINS`` limits which third-party plugins load: a comma list of entry-point
names; an empty string loads none. Unset, all installed plugins load.
"""

from __future__ import annotations

import functools
import importlib
import importlib.metadata
import os
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pluggy

from .errors import AbcflaxWarning, UsageError

GROUP = "abcflax"
ENV_VAR = "ABCFLAX_PLUGINS"
BUILTIN_PLUGINS = ("abcflax_plugins.exporters", "abcflax_plugins.music21_abc")

hookspec = pluggy.HookspecMarker(GROUP)
hookimpl = pluggy.HookimplMarker(GROUP)


@hookspec
def register_exporters(register):
    """Call ``register(name, extensions, write, *, binary=True, tunebook=False, description="")``.

    ``write(abc: str, options: dict) -> bytes`` renders one tune (or a whole tunebook when ``tunebook``);
    ``extensions`` are file suffixes with the dot (``(".mid", ".midi")``); ``binary`` formats never go to stdout.
    """


@hookspec
def register_importers(register):
    """Call ``register(name, extensions, read, *, description="")``; ``read(path: str) -> str`` returns ABC."""


@dataclass(frozen=True)
class Exporter:
    """One output format."""

    name: str  # what --format takes
    extensions: tuple[str, ...]  # suffixes that select it, with the dot
    write: Callable[[str, dict], bytes]  # (ABC text, options) -> file contents
    binary: bool = True  # binary data is never written to a terminal/stdout
    tunebook: bool = False  # True: one file holds many tunes; False: one file per tune
    description: str = ""
    plugin: str = ""  # name of the plugin that registered it


@dataclass(frozen=True)
class Importer:
    """One input format converted to ABC."""

    name: str
    extensions: tuple[str, ...]
    read: Callable[[str], str]  # path -> ABC text
    description: str = ""
    plugin: str = ""


@dataclass(frozen=True)
class PluginInfo:
    """A loaded plugin and what it provides (for ``abcflax plugins``)."""

    name: str
    builtin: bool
    exporters: tuple[str, ...] = ()
    importers: tuple[str, ...] = ()


@dataclass
class _Registry:
    exporters: dict[str, Exporter] = field(default_factory=dict)
    importers: dict[str, Importer] = field(default_factory=dict)


def _allowed_plugins() -> set[str] | None:
    """Third-party plugin names allowed by ABCFLAX_PLUGINS; None means all."""
    value = os.environ.get(ENV_VAR)
    if value is None:
        return None
    return {name.strip() for name in value.split(",") if name.strip()}


def _load_entry_points(manager: pluggy.PluginManager) -> None:
    allowed = _allowed_plugins()
    for entry in importlib.metadata.entry_points(group=GROUP):
        if entry.value.split(":")[0] in BUILTIN_PLUGINS:
            continue  # an older install listed built-ins as entry points; they are registered directly
        if allowed is not None and entry.name not in allowed:
            continue
        if manager.get_plugin(entry.name) is not None:
            continue
        try:
            manager.register(entry.load(), name=entry.name)
        except Exception as exc:  # noqa: BLE001 - one broken plugin must not break every command
            warnings.warn(f"abcflax plugin {entry.name!r} failed to load: {type(exc).__name__}: {exc}",
                          AbcflaxWarning, stacklevel=2)


@functools.lru_cache(maxsize=1)
def get_plugin_manager() -> pluggy.PluginManager:
    """The plugin manager with built-in and (allowed) third-party plugins registered."""
    manager = pluggy.PluginManager(GROUP)
    manager.add_hookspecs(sys.modules[__name__])
    for module_name in BUILTIN_PLUGINS:
        manager.register(importlib.import_module(module_name), name=module_name)
    _load_entry_points(manager)
    return manager


def _collect(hook_name: str, make) -> dict:
    """Call every implementation of one hook with a ``register`` that remembers the plugin it came from."""
    manager = get_plugin_manager()
    found: dict = {}
    # get_hookimpls() lists in registration order: built-ins first, so they win name clashes
    for impl in getattr(manager.hook, hook_name).get_hookimpls():
        def register(name, extensions, function, *, _plugin=impl.plugin_name, **extra):
            item = make(name=name, extensions=tuple(e.lower() for e in extensions), plugin=_plugin,
                        function=function, **extra)
            if item.name in found:
                warnings.warn(f"abcflax plugin {_plugin!r}: format {name!r} already provided by "
                              f"{found[item.name].plugin!r}; ignored", AbcflaxWarning, stacklevel=2)
                return
            found[item.name] = item

        impl.function(register=register)
    return found


@functools.lru_cache(maxsize=1)
def _registry() -> _Registry:
    return _Registry(
        exporters=_collect("register_exporters",
                           lambda function, **kw: Exporter(write=function, **kw)),
        importers=_collect("register_importers",
                           lambda function, **kw: Importer(read=function, **kw)))


def reset_plugins() -> None:
    """Forget loaded plugins (tests change ABCFLAX_PLUGINS and entry points, then call this)."""
    _registry.cache_clear()
    get_plugin_manager.cache_clear()


def exporters() -> dict[str, Exporter]:
    """Output formats by name."""
    return dict(_registry().exporters)


def importers() -> dict[str, Importer]:
    """Input formats by name."""
    return dict(_registry().importers)


def _by_suffix(items: dict, suffix: str):
    suffix = suffix.lower()
    return next((item for item in items.values() if suffix in item.extensions), None)


def find_exporter(fmt: str | None = None, path: str | None = None) -> Exporter:
    """The exporter named by ``fmt`` (a name or an extension), else the one for ``path``'s suffix; a device or
    FIFO with no suffix (``/dev/null``, a named pipe) takes ABC text, as ``harmonize`` always writes."""
    from .atomic import is_device_or_fifo

    known = exporters()
    names = ", ".join(sorted(known))
    if fmt:
        key = fmt.lower().lstrip(".")
        found = known.get(key) or _by_suffix(known, "." + key)
        if found is None:
            raise UsageError(f"unknown output format {fmt!r} (known: {names})")
        return found
    suffix = Path(path or "").suffix
    if not suffix and path and is_device_or_fifo(path) and "abc" in known:
        return known["abc"]
    found = _by_suffix(known, suffix) if suffix else None
    if found is None:
        extensions = " ".join(sorted({ext for exporter in known.values() for ext in exporter.extensions}))
        why = f"unknown output extension {suffix!r}" if suffix else "no extension to tell the output format"
        raise UsageError(f"{path}: {why} (use one of {extensions}, or --format {names.replace(', ', '|')})")
    return found


def find_importer(path: str) -> Importer | None:
    """The importer for ``path``'s suffix, or None (plain ABC needs none)."""
    suffix = Path(path).suffix
    return _by_suffix(importers(), suffix) if suffix else None


def list_plugins() -> list[PluginInfo]:
    """Loaded plugins, built-ins first, with the formats each one provides."""
    manager = get_plugin_manager()
    registry = _registry()
    infos = []
    for name, _plugin in manager.list_name_plugin():
        infos.append(PluginInfo(
            name=name, builtin=name in BUILTIN_PLUGINS,
            exporters=tuple(e.name for e in registry.exporters.values() if e.plugin == name),
            importers=tuple(i.name for i in registry.importers.values() if i.plugin == name)))
    return sorted(infos, key=lambda info: (not info.builtin, info.name))
