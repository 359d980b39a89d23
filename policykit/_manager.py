"""Plugin manager set-up: hookspecs, the built-in plugins, entry points, the policy."""

from __future__ import annotations

import functools
import importlib
import importlib.util
import inspect
import os
import re
import sys
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pluggy

from . import hookspecs
from .engine import builtin
from .engine.context import name_problem
from .engine.specs import OWNERS, AttributeSpec, Registry, size_pages
from .errors import PluginError, PolicyLoadError, did_you_mean

#: entry-point group third-party plugins register under
ENTRY_POINT_GROUP = "policykit"
#: set to a non-empty value to load only the built-in plugins and those named explicitly
DISABLE_AUTOLOAD_ENV = "POLICYKIT_DISABLE_PLUGIN_AUTOLOAD"
#: set to a non-empty value to print every hook call, with its arguments and result, to stderr
TRACE_HOOKS_ENV = "POLICYKIT_TRACE_HOOKS"


class _PluginManager(pluggy.PluginManager):
    """Accepts undecorated ``policykit_*`` functions as hookimpls, as pytest does for
    ``pytest_*``, so a policy module can be plain functions."""

    #: every hook call is traced (the engine then never bypasses pluggy)
    traced = False

    def __init__(self, project_name: str) -> None:
        super().__init__(project_name)
        #: plugin name -> (distribution, version) of entry-point plugins
        self.distributions: dict[str, tuple[str, str]] = {}

    def parse_hookimpl_opts(self, plugin: Any, name: str) -> Any:
        # The same plugin modules join every session's manager: look at each once.
        return _remembered(_HOOKIMPL_OPTS, plugin, name, self._hookimpl_opts)

    def parse_hookspec_opts(self, module_or_class: Any, name: str) -> Any:
        # The hookspecs (and a plugin's own) join every session's manager too.
        return _remembered(_HOOKSPEC_OPTS, module_or_class, name, super().parse_hookspec_opts)

    def _hookimpl_opts(self, plugin: Any, name: str) -> Any:
        opts = super().parse_hookimpl_opts(plugin, name)
        if opts is None and name.startswith("policykit_"):
            method = getattr(plugin, name, None)
            if inspect.isroutine(method):
                return {}
        return opts


def _remembered(table: weakref.WeakKeyDictionary[Any, dict[str, Any]], owner: Any, name: str,
                parse: Callable[[Any, str], Any]) -> Any:
    """``parse(owner, name)``, worked out once per owner and name and kept in ``table``;
    a copy of it each time (pluggy fills in what it is given)."""
    try:
        seen = table.setdefault(owner, {})
    except TypeError:                       # not weakly referenceable, or unhashable
        return parse(owner, name)
    if name not in seen:
        seen[name] = parse(owner, name)
    opts = seen[name]
    return None if opts is None else dict(opts)


#: plugin -> {attribute name: hookimpl options or None}, as pluggy parsed them
_HOOKIMPL_OPTS: weakref.WeakKeyDictionary[Any, dict[str, Any]] = weakref.WeakKeyDictionary()
#: hookspec module or class -> {attribute name: hookspec options or None}
_HOOKSPEC_OPTS: weakref.WeakKeyDictionary[Any, dict[str, Any]] = weakref.WeakKeyDictionary()


@dataclass(frozen=True)
class Policy:
    """A loaded policy: its name, the plugin object implementing the decision hooks, and
    where it came from."""

    name: str
    plugin: Any
    source: str
    summary: str = ""
    #: every rule of a .pol policy, as ``file:line`` (for rule coverage)
    rules: tuple[str, ...] = ()
    #: why the policy reads engine-private truth, if it does
    unrealizable: str | None = None
    #: every name written after a dot in the policy and what it extends: a superset of
    #: the attributes its rules can read (None for a Python policy: anything)
    mentions: frozenset[str] | None = None


@functools.cache
def _entry_point_plugins() -> tuple[tuple[str, Any, tuple[str, str]], ...]:
    """The ``policykit`` entry points, loaded once per process (scanning the installed
    distributions is slow, and every run builds a plugin manager)."""
    found = []
    from ._entry_points import entry_points

    for ep in entry_points(ENTRY_POINT_GROUP):
        try:
            plugin = ep.load()
        except Exception as exc:  # an entry point that fails to import
            raise PluginError(f"could not load the entry point {ep.name!r} ({ep.value}): "
                              f"{type(exc).__name__}: {exc}", plugin=ep.name) from None
        found.append((ep.name, plugin, (ep.dist, ep.version)))
    return tuple(found)


def _register(pm: pluggy.PluginManager, plugin: Any, name: str) -> None:
    try:
        pm.register(plugin, name=name)
    except pluggy.PluginValidationError as exc:
        raise PluginError(str(exc), plugin=name) from None
    except ValueError as exc:
        raise PluginError(str(exc), plugin=name) from None


def get_plugin_manager(policy: Policy | None = None, plugins: list[Any] = (),  # type: ignore[assignment]
                       autoload: bool | None = None) -> pluggy.PluginManager:
    """Build a plugin manager: hookspecs, built-in plugins, entry-point plugins (unless
    disabled), extra ``plugins``, then the ``policy``.  Every hookimpl is checked against
    its spec; a bad one raises :class:`PluginError` naming the plugin."""
    pm = _PluginManager("policykit")
    pm.add_hookspecs(hookspecs)
    # historic: every plugin registered from here on gets the call as it registers
    pm.hook.policykit_addhooks.call_historic(kwargs={"pluginmanager": pm})
    _register(pm, builtin, "policykit.builtin")
    if autoload is None:
        autoload = not os.environ.get(DISABLE_AUTOLOAD_ENV)
    if autoload:
        for name, plugin, dist in _entry_point_plugins():
            _register(pm, plugin, name)
            pm.distributions[name] = dist
    for i, plugin in enumerate(plugins):
        _register(pm, plugin, getattr(plugin, "__name__", f"plugin-{i}"))
    if policy is not None:
        _register(pm, policy.plugin, f"policy:{policy.name}")
    _check_unknown_hooks(pm)
    if os.environ.get(TRACE_HOOKS_ENV):
        pm.trace.root.setwriter(sys.stderr.write)
        pm.enable_tracing()
        pm.traced = True
    return pm


def _check_unknown_hooks(pm: pluggy.PluginManager) -> None:
    """Like ``check_pending``, with the plugin's name and a did-you-mean."""
    known = [n for n in vars(pm.hook) if getattr(pm.hook, n).spec is not None]
    for name in list(vars(pm.hook)):
        caller = getattr(pm.hook, name)
        if caller.spec is not None:
            continue
        for impl in caller.get_hookimpls():
            if impl.optionalhook:
                continue
            hint = did_you_mean(name, known)
            raise PluginError(f"unknown hook {name!r}" + (f"; {hint}" if hint else ""),
                              plugin=impl.plugin_name, hook=name)


@functools.lru_cache(maxsize=2)
def plugin_registry(autoload: bool | None = None) -> Registry:
    """What the installed plugins declare, without a policy: what policies are checked
    against.  ``autoload`` None: the entry-point plugins unless
    ``POLICYKIT_DISABLE_PLUGIN_AUTOLOAD`` is set.  Built once per process (the plugins do
    not change while it runs)."""
    if autoload is None:
        autoload = not os.environ.get(DISABLE_AUTOLOAD_ENV)
    return _plugin_registry(autoload)


@functools.cache
def _plugin_registry(autoload: bool) -> Registry:
    return build_registry(get_plugin_manager(autoload=autoload))


def describe_plugins(pm: pluggy.PluginManager) -> list[dict[str, Any]]:
    """Every registered plugin: its distribution and version, the hooks it implements,
    and what it declares (for ``policykit plugins``)."""
    dists = getattr(pm, "distributions", {})
    out = []
    for name, plugin in pm.list_name_plugin():
        if plugin is None:
            continue
        dist = dists.get(name)
        hooks = sorted(h.name for h in pm.get_hookcallers(plugin) or ())
        adds: dict[str, list[str]] = {}
        for hook, label, key in (("policykit_add_decision_points", "decision points", lambda s: s.name),
                                 ("policykit_add_attributes", "attributes", lambda s: f"{s.owner}.{s.name}"),
                                 ("policykit_add_operations", "operations", lambda s: s.name),
                                 ("policykit_add_metrics", "metrics", lambda s: s.name),
                                 ("policykit_add_violation_classes", "violation classes", lambda s: s.name)):
            fn = getattr(plugin, hook, None)
            if hook in hooks and fn is not None:
                try:
                    adds[label] = [key(s) for s in fn() or ()]
                except Exception as exc:
                    raise PluginError(f"{type(exc).__name__}: {exc}", plugin=name, hook=hook) from None
        out.append({
            "name": name,
            "distribution": dist[0] if dist else None,
            "version": dist[1] if dist else None,
            "hooks": hooks,
            "adds": adds,
        })
    return out


def build_registry(pm: pluggy.PluginManager) -> Registry:
    """Merge what every plugin declared; a name declared twice is an error."""
    reg = Registry()

    def merge(hook_name: str, target: dict, key: Any) -> None:
        hook = getattr(pm.hook, hook_name)
        for impl in hook.get_hookimpls():
            plugin_name = impl.plugin_name
            try:
                specs = impl.function() or []
            except Exception as exc:
                raise PluginError(f"{type(exc).__name__}: {exc}", plugin=plugin_name,
                                  hook=hook_name) from None
            for spec in specs:
                k = key(spec)
                if k in target:
                    raise PluginError(f"{k!r} is declared by both {target[k].provider!r} and "
                                      f"{plugin_name!r}", plugin=plugin_name, hook=hook_name)
                if spec.provider == "policykit" and plugin_name != "policykit.builtin":
                    spec = type(spec)(**{**_fields(spec), "provider": plugin_name})
                target[k] = spec

    merge("policykit_add_attributes", reg.attributes, lambda s: (s.owner, s.name))
    merge("policykit_add_decision_points", reg.decision_points, lambda s: s.name)
    merge("policykit_add_operations", reg.operations, lambda s: s.name)
    merge("policykit_add_metrics", reg.metrics, lambda s: s.name)
    merge("policykit_add_violation_classes", reg.violation_classes, lambda s: s.name)
    merge("policykit_add_variants", reg.variants, lambda s: s.name)
    for spec in reg.attributes.values():
        _check_attribute(spec)
    for variant in reg.variants.values():
        for label in variant.sizes:
            try:
                size_pages(label)
            except ValueError as exc:
                raise PluginError(f"variant {variant.name!r}: size {exc}", plugin=variant.provider,
                                  hook="policykit_add_variants") from None
    for name, point in reg.decision_points.items():
        if point.default is not None and point.default not in point.actions:
            raise PluginError(f"decision point {name!r}: default {point.default!r} is not one of its "
                              f"actions ({', '.join(point.actions)})", plugin=point.provider)
        hook = getattr(pm.hook, point.hook_name, None)
        if hook is None or hook.spec is None or not (hook.spec.opts.get("firstresult")):
            raise PluginError(f"decision point {name!r} has no firstresult hookspec "
                              f"{point.hook_name}; add one in policykit_addhooks",
                              plugin=point.provider)
    return reg


def _check_attribute(spec: AttributeSpec) -> None:
    """An attribute name a policy can read, that shadows nothing the engine has."""
    where = f"{spec.owner}.{spec.name}"
    if spec.owner not in OWNERS:
        raise PluginError(f"attribute {where!r}: no such owner (owners: {', '.join(OWNERS)})",
                          plugin=spec.provider, hook="policykit_add_attributes")
    if spec.flag and spec.owner not in ("page", "mm"):
        raise PluginError(f"flag {where!r}: flags live on page or mm", plugin=spec.provider,
                          hook="policykit_add_attributes")
    problem = None if spec.provider == "policykit" else name_problem(spec.owner, spec.name, spec.flag)
    if problem is not None:
        raise PluginError(f"attribute {where!r}: {problem}", plugin=spec.provider,
                          hook="policykit_add_attributes")


def _fields(spec: Any) -> dict[str, Any]:
    return {f: getattr(spec, f) for f in spec.__dataclass_fields__}


def check_policy_complete(pm: pluggy.PluginManager, registry: Registry, policy: Policy) -> None:
    """Every decision point needs an answer: a missing one is a load error."""
    missing = [name for name, point in registry.decision_points.items()
               if point.default is None and not getattr(pm.hook, point.hook_name).get_hookimpls()]
    if missing:
        raise PolicyLoadError(
            f"policy {policy.name!r} ({policy.source}) decides nothing at: {', '.join(missing)}; "
            "every decision point needs an answer")


def policy_from_checked(checked: Any) -> Policy:
    """A checked policy (:class:`~policykit.dsl.CheckedPolicy`) compiled and loaded."""
    from . import dsl

    return Policy(plugin=dsl.compile_policy(checked).plugin, **_policy_fields(checked))


def _policy_fields(checked: Any) -> dict[str, Any]:
    """What a :class:`Policy` says of a checked policy, but its plugin."""
    rules = tuple(f"{Path(r.span.filename).name}:{r.span.line}"
                  for block in checked.blocks.values() for r in block.rules)
    # every name after a dot in the policy's files: what its rules may read
    text = "\n".join(f.source for f in checked.files)
    mentions = frozenset(re.findall(r"\.\s*([A-Za-z_]\w*)", text)) if all(f.source for f in checked.files) else None
    return {"name": checked.name, "source": checked.filename, "summary": checked.summary, "rules": rules,
            "unrealizable": checked.unrealizable, "mentions": mentions}


def _load_pol(spec: str, autoload: bool | None) -> Policy:
    """Load a ``.pol`` policy: from the cache of compiled policies when it is there and
    still holds (:mod:`policykit.dsl.cache`), else checked, compiled and kept there."""
    from . import dsl
    from .dsl import cache

    registry = plugin_registry(autoload)
    text, filename = dsl.read_policy(spec)
    hit = cache.load(text, filename, registry, dsl.resolver())
    if hit is not None:
        fields, plugin = hit
        return Policy(plugin=plugin, **fields)
    checked, diagnostics = dsl.check_text(text, filename, registry)
    errors = [d for d in diagnostics if d.severity == "error"]
    if errors:
        raise errors[0].error
    assert checked is not None
    return load_checked(text, filename, registry, checked, not diagnostics)


def load_checked(text: str, filename: str, registry: Registry, checked: Any, clean: bool) -> Policy:
    """``checked`` (the policy in ``filename``, ``text``) compiled, loaded, and kept in
    the cache of compiled policies; ``clean``: its check said nothing."""
    from . import dsl
    from .dsl import cache

    compiled = dsl.compile_policy(checked)
    fields = _policy_fields(checked)
    cache.store(text, filename, registry, checked, compiled, fields, clean)
    return Policy(plugin=compiled.plugin, **fields)


def load_policy(spec: str, autoload: bool | None = None) -> Policy:
    """Load a policy: a ``.pol`` file or built-in policy name (checked and compiled), or a
    Python module, as a ``.py`` file or an importable module name.

    A Python policy implements decision hooks (``policykit_wp_fault`` ...), decorated with
    :data:`policykit.hookimpl` or not; ``POLICY_NAME`` and ``POLICY_SUMMARY`` name it
    (the file stem by default).
    """
    from .config import find_policy, policy_names

    if not Path(spec).exists():
        found = find_policy(spec)
        if found is not None and found.suffix == ".py":
            spec = str(found)
    if spec.endswith(".pol") or (not Path(spec).exists() and find_policy(spec) is not None):
        return _load_pol(spec, autoload)
    path = Path(spec)
    if path.suffix == ".py" or path.exists():
        if not path.is_file():
            raise PolicyLoadError(f"{spec}: no such policy file")
        if path.suffix != ".py":
            raise PolicyLoadError(f"{spec}: not a policy (expected *.pol, a built-in name, or *.py)")
        modname = f"policykit_policy_{abs(hash(str(path.resolve())))}"
        mod_spec = importlib.util.spec_from_file_location(modname, path)
        assert mod_spec is not None and mod_spec.loader is not None
        module = importlib.util.module_from_spec(mod_spec)
        try:
            mod_spec.loader.exec_module(module)
        except SyntaxError as exc:
            raise PolicyLoadError(f"{spec}:{exc.lineno}:{exc.offset}: syntax error in policy: {exc.msg}") from None
        except Exception as exc:
            raise PolicyLoadError(f"{spec}: importing the policy failed: {type(exc).__name__}: {exc}") from None
        default_name = path.stem.replace("_", "-")
        source = str(path)
    else:
        try:
            module = importlib.import_module(spec)
        except ImportError as exc:
            hint = did_you_mean(spec, policy_names())
            raise PolicyLoadError(f"{spec}: not a policy file, a policy on the policy path, or a module"
                                  + (f"; {hint}" if hint else f" ({exc})")) from None
        default_name = spec.rsplit(".", 1)[-1].replace("_", "-")
        source = getattr(module, "__file__", spec) or spec
    return _policy_from_module(module, default_name, source)


def _policy_from_module(module: ModuleType, default_name: str, source: str) -> Policy:
    name = getattr(module, "POLICY_NAME", default_name)
    summary = getattr(module, "POLICY_SUMMARY", (module.__doc__ or "").strip().split("\n")[0])
    if not any(n.startswith("policykit_") for n in vars(module)):
        raise PolicyLoadError(f"{source}: defines no policykit_* hooks, so it is not a policy")
    sys.modules.setdefault(module.__name__, module)
    return Policy(name, module, source, summary)
