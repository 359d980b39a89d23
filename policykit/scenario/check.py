"""Semantic check of a scenario against the operation registry.

Binds each step's arguments to the operation's parameters and follows the names a
scenario introduces (processes, regions, references) line by line, so that a
misspelt process, a write to unmapped or read-only memory, or a reference used after
it was dropped is reported at its line, with a hint, before anything runs.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from ..engine.model import PAGE_SIZE
from ..engine.specs import OperationSpec, Param, Registry
from ..errors import ScenarioError, Span, did_you_mean
from ..limits import MAX_FILES, MAX_PAGES_PER_MAPPING, MAX_PROCESSES, MAX_TOTAL_PAGES
from .model import Arg, Scenario, Step



@dataclass
class _Mapping:
    npages: int
    mapped: dict[int, None] = field(default_factory=dict)       # ordered set of page indexes
    why_unmapped: dict[int, str] = field(default_factory=dict)
    readonly: dict[int, int] = field(default_factory=dict)      # page -> line of mprotect ro
    dontfork: dict[int, int] = field(default_factory=dict)      # page -> line of MADV_DONTFORK

    def copy_for_child(self, fork_line: int) -> _Mapping:
        child = _Mapping(self.npages)
        for i in self.mapped:
            if i in self.dontfork:
                child.why_unmapped[i] = f"MADV_DONTFORK at line {self.dontfork[i]} kept it from the child"
            else:
                child.mapped[i] = None
                if i in self.readonly:
                    child.readonly[i] = self.readonly[i]
        for i, why in self.why_unmapped.items():
            child.why_unmapped.setdefault(i, why)
        return child


@dataclass
class _Proc:
    name: str
    regions: dict[str, _Mapping] = field(default_factory=dict)
    exited: int | None = None


@dataclass
class _Ref:
    name: str
    owner: str
    pin: bool
    write: bool
    npages: int
    released: int | None = None


@dataclass
class _State:
    procs: dict[str, _Proc] = field(default_factory=dict)
    regions: dict[str, tuple[int, bool]] = field(default_factory=dict)   # name -> (npages, shared)
    refs: dict[str, _Ref] = field(default_factory=dict)
    aliases: dict[str, tuple[str, int, int]] = field(default_factory=dict)  # name -> (region, lo, hi)
    #: what the scenario makes, against the limits of :mod:`policykit.limits`: processes
    #: made, files made, pages mapped by live processes or held by files
    processes: int = 0
    files: int = 0
    pages: int = 0


class _Checker:
    def __init__(self, scn: Scenario, text: str, registry: Registry) -> None:
        self.scn = scn
        self.text = text
        self.registry = registry
        self.state = _State()

    def error(self, msg: str, span: Span | None, hint: str) -> ScenarioError:
        return ScenarioError(msg, span or Span(self.scn.filename, 1, 1), self.text, hint)

    # -- arguments -----------------------------------------------------------------------

    def usage(self, spec: OperationSpec) -> str:
        parts = [spec.name]
        for p in spec.params:
            if p.kind == "word" and p.default is not None:
                parts.append(f"[{'|'.join(p.choices)}]")
            elif p.kind == "int" and p.default is not None:
                parts.append(f"[{p.name.upper()}]")
            elif p.kind == "word":
                parts.append("|".join(p.choices))
            elif p.kind == "flags":
                parts.append(" ".join(f"[{c}]" for c in p.choices))
            else:
                parts.append(p.name.upper())
        if spec.result:
            parts.append(f"-> {spec.result.upper()}")
        return " ".join(parts)

    def bind(self, step: Step, spec: OperationSpec) -> dict[str, Any]:
        args = list(step.args)
        out: dict[str, Any] = {}
        proc: _Proc | None = None
        pos = 0

        def missing(p: Param) -> ScenarioError:
            span = Span(step.span.filename, step.span.line, len(step.text) + 1)
            return self.error(f"'{step.op}' needs {_describe_param(p)}", span,
                              f"usage: {self.usage(spec)}")

        for p in spec.params:
            arg = args[pos] if pos < len(args) else None
            if p.kind == "flags":
                flags = []
                while pos < len(args) and args[pos].kind == "word":
                    a = args[pos]
                    if a.value not in p.choices:
                        hint = did_you_mean(a.value, p.choices)
                        raise self.error(f"unknown {p.name} {a.value!r} for '{step.op}'", a.span,
                                         hint or f"one of: {', '.join(p.choices)}")
                    flags.append(a.value)
                    pos += 1
                out[p.name] = frozenset(flags)
                continue
            if p.kind == "word":
                if arg is not None and arg.kind == "word" and arg.value in p.choices:
                    out[p.name] = arg.value
                    pos += 1
                elif p.default is not None and arg is not None and arg.kind == "word" \
                        and did_you_mean(arg.value, p.choices):
                    raise self.error(f"unknown {p.name} {arg.value!r} for '{step.op}'", arg.span,
                                     did_you_mean(arg.value, p.choices))
                elif p.default is not None:
                    out[p.name] = p.default
                elif arg is None:
                    raise missing(p)
                else:
                    hint = did_you_mean(str(arg.value), p.choices) if arg.kind == "word" else None
                    raise self.error(f"expected {_describe_param(p)}, got {str(arg)!r}", arg.span,
                                     hint or f"usage: {self.usage(spec)}")
                continue
            if p.kind == "int" and p.default is not None and (arg is None or arg.kind != "int"):
                out[p.name] = p.default
                continue
            if arg is None:
                raise missing(p)
            pos += 1
            if p.kind == "int":
                if arg.kind != "int":
                    raise self.error(f"expected a number for {p.name}, got {str(arg)!r}", arg.span,
                                     f"usage: {self.usage(spec)}")
                out[p.name] = arg.value
            elif p.kind == "process":
                proc = self.process(arg)
                out[p.name] = proc.name
            elif p.kind == "region":
                assert proc is not None, f"operation {spec.name}: a region parameter needs a process before it"
                out[p.name] = self.region(proc, arg)
            elif p.kind == "ref":
                out[p.name] = self.ref(arg)
            elif p.kind == "name":
                if arg.kind != "word":
                    raise self.error(f"expected a name for {p.name}, got {str(arg)!r}", arg.span,
                                     f"usage: {self.usage(spec)}")
                out[p.name] = arg.value
            else:  # pragma: no cover - OperationSpec authors' mistake
                raise AssertionError(f"operation {spec.name}: unknown parameter kind {p.kind!r}")
        if pos < len(args):
            extra = args[pos]
            if spec.result and step.result is None and pos == len(args) - 1 and extra.kind == "word":
                raise self.error(f"too many arguments to '{step.op}'", extra.span,
                                 f"name the result after '->': '{step.op} ... -> {extra.value}'")
            raise self.error(f"too many arguments to '{step.op}'", extra.span,
                             f"usage: {self.usage(spec)}")
        if spec.result and step.result is None:
            span = Span(step.span.filename, step.span.line, len(step.text) + 1)
            raise self.error(f"'{step.op}' needs a name for its result", span,
                             f"usage: {self.usage(spec)}")
        if not spec.result and step.result is not None:
            raise self.error(f"'{step.op}' has no result to name", step.result_span,
                             f"usage: {self.usage(spec)}")
        if step.result is not None:
            self.fresh(step.result, spec.result, step.result_span)  # type: ignore[arg-type]
            out["_name"] = step.result
        return out

    def process(self, arg: Arg) -> _Proc:
        if arg.kind != "word":
            raise self.error(f"expected a process name, got {str(arg)!r}", arg.span,
                             "processes are named by 'spawn -> NAME' or 'fork P -> NAME'")
        proc = self.state.procs.get(arg.value)
        if proc is None:
            hint = did_you_mean(arg.value, self.state.procs)
            known = f" (known: {', '.join(self.state.procs)})" if self.state.procs else ""
            raise self.error(f"unknown process {arg.value!r}", arg.span,
                             hint or f"processes are started with 'spawn -> NAME' or 'fork P -> NAME'{known}")
        if proc.exited is not None:
            raise self.error(f"process {arg.value!r} exited at line {proc.exited}", arg.span,
                             "an exited process can do nothing more; fork another one")
        return proc

    def _slice(self, arg: Arg, n: int, what: str) -> tuple[int, int]:
        if arg.kind == "word":
            return 0, n
        if arg.kind not in ("index", "slice"):
            raise self.error(f"expected {what}, got {str(arg)!r}", arg.span,
                             "write NAME, NAME[i] or NAME[i:j]")
        lo, hi = arg.index  # type: ignore[misc]
        lo = 0 if lo is None else lo
        hi = n if hi is None else hi
        if not 0 <= lo < hi <= n:
            raise self.error(f"{str(arg)} is out of range: {arg.value!r} has {n} page{'s' * (n != 1)}",
                             arg.span, f"valid indexes are 0..{n - 1}")
        return lo, hi

    def region(self, proc: _Proc, arg: Arg) -> tuple[str, int, int]:
        """(region, lo, hi) of a region argument; an alias is resolved to its region."""
        name = arg.value
        known = self.state.regions.keys() | self.state.aliases.keys()
        if arg.kind == "int" or name not in known:
            hint = did_you_mean(str(name), known)
            raise self.error(f"unknown region {str(name)!r}", arg.span,
                             hint or "regions are created with 'mmap P PAGES -> NAME'")
        name, offset, npages = name, 0, None
        if name in self.state.aliases:
            name, offset, end = self.state.aliases[name]
            npages = end - offset
        mapping = proc.regions.get(name)
        if mapping is None:
            raise self.error(f"region {name!r} is not mapped in {proc.name!r}", arg.span,
                             "a child has the regions its parent had at fork; later mmaps are the mapper's own")
        lo, hi = self._slice(arg, mapping.npages if npages is None else npages, "a region")
        lo, hi = lo + offset, hi + offset
        for i in range(lo, hi):
            if i not in mapping.mapped:
                raise self.error(f"page {i} of {name!r} is not mapped in {proc.name!r}", arg.span,
                                 mapping.why_unmapped.get(i, "it was never mapped in this process"))
        return name, lo, hi

    def ref(self, arg: Arg) -> tuple[str, int, int]:
        ref = self.state.refs.get(arg.value) if arg.kind != "int" else None
        if ref is None:
            hint = did_you_mean(str(arg.value), self.state.refs)
            raise self.error(f"unknown reference {str(arg.value)!r}", arg.span,
                             hint or "references are taken with 'gup', 'pin' or 'vmsplice' ... -> NAME")
        if ref.released is not None:
            raise self.error(f"reference {ref.name!r} was dropped at line {ref.released}", arg.span,
                             "a reference cannot be used after unpin, put, or its owner's exit")
        lo, hi = self._slice(arg, ref.npages, "a reference")
        return ref.name, lo, hi

    def fresh(self, name: str, kind: str, span: Span) -> None:
        st = self.state
        for taken, what in ((st.procs, "a process"), (st.regions, "a region"), (st.aliases, "a region"),
                            (st.refs, "a reference")):
            if name in taken:
                raise self.error(f"{name!r} is already {what}", span, "give every name once")

    # -- effects of the built-in operations -------------------------------------------

    def _arg_span(self, step: Step, spec: OperationSpec, name: str) -> Span:
        i = next((i for i, p in enumerate(spec.params) if p.name == name), 0)
        return step.args[i].span if i < len(step.args) else step.span

    def _make(self, step: Step, processes: int = 0, pages: int = 0, files: int = 0) -> None:
        """Count what a step makes against the scenario limits, before anything runs."""
        st = self.state
        st.processes += processes
        st.pages += pages
        st.files += files
        for made, limit, what in ((st.processes, MAX_PROCESSES, "processes"),
                                  (st.pages, MAX_TOTAL_PAGES, "pages mapped or held by files at once"),
                                  (st.files, MAX_FILES, "files")):
            if made > limit:
                raise self.error(f"this step makes the scenario exceed {limit:,} {what} ({made:,})",
                                 step.span, "scenario limits keep every run small: see docs/security.md")

    @staticmethod
    def _mapped(proc: _Proc | None) -> int:
        return sum(len(m.mapped) for m in proc.regions.values()) if proc is not None else 0

    def apply(self, step: Step, a: dict[str, Any]) -> None:
        st = self.state
        op, line = step.op, step.line
        proc = st.procs.get(a.get("process", ""))
        spec = self.registry.operations[op]
        pages = a.get("pages")
        if type(pages) is int and any(p.name == "pages" and p.kind == "int" for p in spec.params):
            if not 0 <= pages <= MAX_PAGES_PER_MAPPING:
                raise self.error(f"{op} of {pages:,} pages", self._arg_span(step, spec, "pages"),
                                 f"at most {MAX_PAGES_PER_MAPPING:,} pages ({MAX_PAGES_PER_MAPPING * PAGE_SIZE >> 20} MiB)")
            if spec.makes == "file":
                self._make(step, files=1, pages=pages)
        if op == "spawn":
            self._make(step, processes=1)
            st.procs[a["_name"]] = _Proc(a["_name"])
        elif op == "mmap" or (spec.result == "region" and spec.provider != "policykit"):
            if a["pages"] < 1:
                raise self.error(f"mmap of {a['pages']} pages", step.args[1].span,
                                 f"map between 1 and {MAX_PAGES_PER_MAPPING:,} pages")
            self._make(step, pages=a["pages"])
            name = a["_name"]
            st.regions[name] = (a["pages"], a.get("sharing") == "shared")
            m = _Mapping(a["pages"], dict.fromkeys(range(a["pages"])))
            if a.get("prot") == "ro":
                m.readonly = dict.fromkeys(range(a["pages"]), line)
            proc.regions[name] = m  # type: ignore[union-attr]
        elif op == "fork_children":
            if not 1 <= a["count"] <= MAX_PROCESSES:
                raise self.error(f"fork_children of {a['count']:,} children", step.args[1].span,
                                 f"between 1 and {MAX_PROCESSES:,}")
            self._make(step, processes=a["count"], pages=a["count"] * self._mapped(proc))
        elif op == "alias":
            st.aliases[a["_name"]] = a["region"]
        elif op == "fork":
            st.procs[a["_name"]] = _Proc(a["_name"], {r: m.copy_for_child(line)
                                                     for r, m in proc.regions.items()})  # type: ignore[union-attr]
            self._make(step, processes=1, pages=self._mapped(st.procs[a["_name"]]))
        elif op == "exit":
            st.pages -= self._mapped(proc)
            proc.exited = line  # type: ignore[union-attr]
            for ref in st.refs.values():
                if ref.owner == proc.name and ref.released is None:  # type: ignore[union-attr]
                    ref.released = line
        elif op == "mremap":
            name, lo, hi = a["region"]
            old = proc.regions[name]  # type: ignore[union-attr]
            new = _Mapping(hi - lo)
            for i in range(lo, hi):
                if i in old.mapped:
                    new.mapped[i - lo] = None
                    old.mapped.pop(i)
                    old.why_unmapped[i] = f"moved by mremap at line {line}"
                for marks, moved in ((old.readonly, new.readonly), (old.dontfork, new.dontfork)):
                    if i in marks:
                        moved[i - lo] = marks.pop(i)
            st.regions[a["_name"]] = (hi - lo, st.regions[name][1])
            proc.regions[a["_name"]] = new  # type: ignore[union-attr]
        elif op in ("write", "munmap", "mprotect", "madvise", "gup", "pin", "vmsplice"):
            name, lo, hi = a["region"]
            m = proc.regions[name]  # type: ignore[union-attr]
            pages = range(lo, hi)
            if op == "write":
                ro = [i for i in pages if i in m.readonly]
                if ro:
                    raise self.error(f"write to read-only page {ro[0]} of {name!r}", step.args[1].span,
                                     f"it was made read-only at line {m.readonly[ro[0]]}; "
                                     "'mprotect P REGION rw' first")
            elif op == "munmap":
                for i in pages:
                    m.mapped.pop(i, None)
                    m.why_unmapped[i] = f"munmap at line {line}"
            elif op == "mprotect":
                for i in pages:
                    if a["prot"] == "ro":
                        m.readonly[i] = line
                    else:
                        m.readonly.pop(i, None)
            elif op == "madvise":
                adv = a["advice"]
                if adv == "wipeonfork" and st.regions[name][1]:
                    raise self.error("MADV_WIPEONFORK on a shared mapping", step.args[2].span,
                                     "the kernel answers -EINVAL: only private anonymous memory can be wiped")
                for i in pages:
                    if adv == "dontfork":
                        m.dontfork[i] = line
                    elif adv == "dofork":
                        m.dontfork.pop(i, None)
            else:
                write = "write" in a.get("flags", ())
                force = "force" in a.get("flags", ())
                ro = [i for i in pages if i in m.readonly]
                if write and ro and not force:
                    raise self.error(f"FOLL_WRITE on read-only page {ro[0]} of {name!r}", step.args[1].span,
                                     "the kernel fails such GUP with -EFAULT; add 'force' for FOLL_FORCE")
                pin = op == "pin" or a.get("kind") == "pin"
                st.refs[a["_name"]] = _Ref(a["_name"], proc.name, pin, write, hi - lo)  # type: ignore[union-attr]
        elif op in ("unpin", "put", "dma_write"):
            ref = st.refs[a["ref"][0]]
            span = step.args[0].span
            if op == "unpin" and not ref.pin:
                raise self.error(f"{ref.name!r} is a FOLL_GET reference", span, f"drop it with 'put {ref.name}'")
            if op == "put" and ref.pin:
                raise self.error(f"{ref.name!r} is a FOLL_PIN reference", span, f"drop it with 'unpin {ref.name}'")
            if op == "dma_write" and not ref.write:
                raise self.error(f"{ref.name!r} is read-only: a device cannot write through it", span,
                                 "take the reference with the 'write' flag")
            if op != "dma_write":
                if a["ref"][1:] != (0, ref.npages):
                    raise self.error(f"'{op}' drops the whole reference", span, f"write '{op} {ref.name}'")
                ref.released = line

    def run(self) -> Scenario:
        """Check every step, then the expectations and budgets; every error (up to
        :data:`MAX_ERRORS`) is collected, those about a name whose making step was wrong
        left out, and raised together as :class:`ScenarioErrors`."""
        steps = []
        ops = self.registry.operations
        errors: list[ScenarioError] = []
        broken: set[str] = set()            # names made by steps that were wrong

        def found(err: ScenarioError) -> None:
            if not any(repr(name) in err.message for name in broken):
                errors.append(err)
            if len(errors) >= MAX_ERRORS:
                raise ScenarioErrors(errors)

        for step in self.scn.steps:
            try:
                spec = ops.get(step.op)
                if spec is None:
                    hint = did_you_mean(step.op, ops)
                    raise self.error(f"unknown operation {step.op!r}", step.span,
                                     hint or f"operations: {', '.join(sorted(ops))}")
                params = self.bind(step, spec)
                self.apply(step, params)
            except ScenarioError as err:
                found(err)
                if step.result is not None:
                    broken.add(step.result)
                continue
            steps.append(Step(step.op, step.args, step.result, step.span, step.text, step.result_span, params))
        classes = set(self.registry.violation_classes)
        for exp in self.scn.expectations.values():
            for name, span in exp.class_spans:
                if name == "ok":
                    if exp.classes:
                        found(self.error("'ok' cannot be combined with violation classes", span,
                                         "'ok' means no violation; list the classes instead"))
                elif name not in classes:
                    hint = did_you_mean(name, classes | {"ok"})
                    found(self.error(f"unknown violation class {name!r}", span,
                                     hint or f"classes: ok, {', '.join(sorted(classes))}"))
        for bounds in self.scn.budgets.values():
            for b in bounds:
                if b.metric not in self.registry.metrics:
                    hint = did_you_mean(b.metric, self.registry.metrics)
                    found(self.error(f"unknown metric {b.metric!r}", b.span,
                                     hint or f"metrics: {', '.join(sorted(self.registry.metrics))}"))
        if errors:
            raise errors[0] if len(errors) == 1 else ScenarioErrors(errors)
        return dataclasses.replace(self.scn, steps=tuple(steps))


#: errors reported about one scenario file before the checker stops
MAX_ERRORS = 20


class ScenarioErrors(ScenarioError):
    """Several errors in one scenario: it is the first (its place and message), and
    renders all of them."""

    def __init__(self, errors: list[ScenarioError]) -> None:
        first = errors[0]
        super().__init__(first.message, first.span, first.source, first.hint)
        self.errors = list(errors)

    def render(self) -> str:
        more = "" if len(self.errors) < MAX_ERRORS else f"\n(stopped after {MAX_ERRORS} errors)"
        return "\n".join(e.render() for e in self.errors) + more


def _describe_param(p: Param) -> str:
    if p.kind == "word":
        return " or ".join(repr(c) for c in p.choices)
    return {"process": "a process", "region": "a region", "ref": "a reference",
            "int": f"a number ({p.name})"}.get(p.kind, p.name)


def check_scenario(scn: Scenario, text: str, registry: Registry) -> Scenario:
    """Bind every step to its operation and check names; return the scenario with
    ``Step.params`` filled.  Raises :class:`ScenarioError` (:class:`ScenarioErrors` for
    more than one) with every problem found."""
    return _Checker(scn, text, registry).run()
