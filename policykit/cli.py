# PYTHON_ARGCOMPLETE_OK
"""Command line: a thin dispatcher over the library.  Results go to stdout, diagnostics
and progress to stderr; the exit code is an :class:`ExitCode`."""

from __future__ import annotations

import argparse
import enum
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from . import config
from .config import PATH_ENV
from .errors import PolicyKitError

if TYPE_CHECKING:           # imported where used: `check` and `--version` start without the engine
    from .run import RunResult, Session

CORPUS_DIR = Path(__file__).parent / "corpus"


class ExitCode(enum.IntEnum):
    #: every scenario met its expectations (or, without one, had no violation)
    OK = 0
    #: a violation, an unmet expectation, a budget exceeded, or (compare) a regression
    FAILED = 1
    #: bad usage or bad input: unreadable file, syntax or semantic error
    USAGE_ERROR = 2
    #: internal error, or a plugin broke the hook contract
    INTERNAL_ERROR = 3


class UsageError(PolicyKitError):
    """A command line that makes no sense (exit 2)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        self.exit(ExitCode.USAGE_ERROR, f"{self.prog}: error: {message}\n")


def scenario_paths(args: Sequence[str], pm=None) -> list[Path]:  # type: ignore[no-untyped-def]
    """Files as given; directories expand to their ``*.scn`` files; none: the built-in
    corpus (the core's only, without a plugin manager)."""
    from .corpus import scenario_files

    if not args and pm is None:
        args = [str(d) for d in config.project().corpus] or [str(CORPUS_DIR)]
    return [_short(p) for p in scenario_files(args, pm)]


def _short(path: Path) -> Path:
    rel = os.path.relpath(path)
    return Path(rel) if not rel.startswith("..") else path


def _progress(unit: str = "run"):  # type: ignore[no-untyped-def]
    """A progress bar on stderr (when it is a terminal) for a command's long run."""
    from .progress import ProgressBar

    return ProgressBar(unit)


def _session(ns: argparse.Namespace, policy: str) -> Session:
    """A session for ``policy`` with the run limits of the command line."""
    from ._manager import load_policy
    from .run import Session

    session = Session(load_policy(policy))
    session.timeout = getattr(ns, "timeout", None) or None
    session.max_pages = getattr(ns, "max_pages", None)
    return session


def cmd_run(ns: argparse.Namespace) -> int:
    from . import report

    session = _session(ns, ns.policy)
    ns.corpus = [*(ns.scenarios or ()), *(ns.corpus or ())]
    scenarios = _corpus(session, ns)
    progress = _progress()
    if ns.trace:
        results = []
        for i, scn in enumerate(scenarios):
            progress(i, len(scenarios), scn.name)
            results.append(session.run(scn, trace=True, invariants=ns.invariants))
    else:
        told = iter(range(1, len(scenarios) + 1))
        results = session.run_many(scenarios, invariants=ns.invariants,
                                   on_result=lambda i, r: progress(next(told), len(scenarios), r.scenario.name))
    progress(len(scenarios), len(scenarios))
    verbosity = 2 if ns.trace else ns.verbose - ns.quiet
    out = [report.render_runs(results, ns.format, min(verbosity, 1))]
    if verbosity > 1 and ns.format not in ("json", "github"):
        out.extend("\n" + report.render_trace(r, ns.format) for r in results)
    print("\n".join(out))
    return _exit(results, all(r.passed for r in results))


def _distinct(sessions: list[Session]) -> list[Session]:
    """The sessions, refusing two policies of one name from two files (their columns
    could not be told apart)."""
    seen: dict[str, Session] = {}
    for s in sessions:
        other = seen.get(s.policy.name)
        if other is not None and other.policy.source != s.policy.source:
            raise UsageError(f"two policies are named {s.policy.name!r}: {other.policy.source} and "
                             f"{s.policy.source}; rename one (its 'policy' line) to compare them")
        seen[s.policy.name] = s
    return sessions


def _exit(results: Sequence[RunResult], ok: bool) -> int:
    """3 when a run could not finish (a plugin's fault, a broken invariant, its time up:
    an ``error`` verdict), else 0 or 1 as ``ok`` says."""
    if any("error" in r.classes for r in results):
        return ExitCode.INTERNAL_ERROR
    return ExitCode.OK if ok else ExitCode.FAILED


def _load(registry, paths: list[Path], skipped: list[tuple[str, str]] | None = None,  # type: ignore[no-untyped-def]
          policies: Sequence[str] = ()) -> list:  # type: ignore[type-arg]
    """Every scenario of ``paths`` (variants expanded).  The variants left out are added
    to ``skipped``; without it, they are noted on stderr.  ``expect``/``budget`` lines
    naming no policy on the path (nor one of ``policies``) are warned about on stderr."""
    from .run import collector_paused
    from .scenario import load_scenarios, unknown_policies

    scenarios: list = []  # type: ignore[type-arg]
    quiet = skipped is not None
    skipped = [] if skipped is None else skipped
    with collector_paused():
        for p in paths:
            scenarios.extend(load_scenarios(p, registry, skipped))
    for w in unknown_policies(scenarios, {*config.policy_names(), *policies}):
        print(w.render(), file=sys.stderr)
    if skipped and not quiet:
        print(f"note: {len(skipped)} variant{'s' * (len(skipped) != 1)} skipped "
              f"({'; '.join(sorted({why for _, why in skipped}))}); see 'policykit corpus'", file=sys.stderr)
    return scenarios


def _corpus(session: Session, ns: argparse.Namespace, policies: Sequence[str] = ()) -> list:  # type: ignore[type-arg]
    """The scenarios a command works on: --corpus (or the built-in corpus), --tag, -k."""
    from .corpus import select

    scenarios = _load(session.registry, scenario_paths(ns.corpus or [], session.pm),
                      policies=[session.policy.name, *policies])
    chosen = select(scenarios, ns.tag or (), ns.k, ns.variant or ())
    if not chosen:
        raise PolicyKitError("no scenario matches" + (f" tags {ns.tag}" if ns.tag else "")
                             + (f" pattern {ns.k!r}" if ns.k else "")
                             + (f" variants {ns.variant}" if ns.variant else ""))
    return chosen


def _yardstick(sessions: list[Session], ns: argparse.Namespace) -> Session | None:
    from . import dsl
    from .compare import YARDSTICK

    for s in sessions:
        if s.policy.name == YARDSTICK:
            return s
    return _session(ns, YARDSTICK) if dsl.builtin_path(YARDSTICK) else None


def _warm_up(fmt: str):  # type: ignore[no-untyped-def]
    """What to do while the last runs finish: import the table renderer (tabulate's
    import reads its own version from the installed metadata, ~20-40 ms)."""
    if fmt == "json":
        return None
    from .terminal import warm_up

    return warm_up


def cmd_compare(ns: argparse.Namespace) -> int:
    from . import report
    from .compare import compare

    if len(ns.policies) < 2:
        raise UsageError(f"compare needs two policies or more, got {len(ns.policies)}; "
                         f"for one policy: policykit score {ns.policies[0]}")
    sessions = _distinct([_session(ns, p) for p in ns.policies])
    scenarios = _corpus(sessions[0], ns, [s.policy.name for s in sessions])
    cmp = compare(sessions, scenarios, _yardstick(sessions, ns), _progress(), ns.jobs, _warm_up(ns.format))
    print(report.render_comparison(cmp, ns.format, ns.only_diff))
    return _exit([r for row in cmp.rows for r in row.results], not cmp.regressions)


def cmd_score(ns: argparse.Namespace) -> int:
    from . import report
    from .compare import compare

    session = _session(ns, ns.policy)
    scenarios = _corpus(session, ns)
    cmp = compare([session], scenarios, _yardstick([session], ns), _progress(), ns.jobs, _warm_up(ns.format))
    print(report.render_comparison(cmp, ns.format, only_diff=False))
    unmet = [row.results[0] for row in cmp.rows if not row.results[0].passed]
    for r in unmet:
        print(f"!!! {r.scenario.name}: expected {' '.join(sorted(r.expected or ())) or 'ok'}, got {r.verdict}"
              + (f"; over budget: {', '.join(r.budget_failures)}" if r.budget_failures else ""), file=sys.stderr)
    return _exit([row.results[0] for row in cmp.rows], not unmet)


def _live_capabilities():  # type: ignore[no-untyped-def]
    """What the live backend can do here; a clear error when it can do nothing."""
    from .live.system import Capabilities

    caps = Capabilities.probe()
    why = caps.reason or caps.perf_reason
    if why:
        raise UsageError(f"the live backend cannot run on this machine: {why}")
    if not caps.pfns:
        print("note: no PFNs in /proc/PID/pagemap (not root): comparing fault outcomes, data and PMD mappings only",
              file=sys.stderr)
    return caps


def cmd_live(ns: argparse.Namespace) -> int:
    from .guard import terminations_interrupt
    from .live.agent import Zygote
    from .live.report import render_live
    from .live.system import Settings
    from .live.validate import run_live

    caps = _live_capabilities()
    session = _session(ns, ns.policy or "linux-6.x")
    scenarios = _corpus(session, argparse.Namespace(**{**vars(ns), "corpus": ns.scenarios + (ns.corpus or [])}))
    with terminations_interrupt(), Settings() as pools, Zygote() as zygote:
        runs = [run_live(sc, caps, pools=pools, zygote=zygote) for sc in scenarios]
    print(render_live(runs, ns.format))
    return ExitCode.OK if all(not r.not_runnable for r in runs) else ExitCode.FAILED


def cmd_validate(ns: argparse.Namespace) -> int:
    from .guard import terminations_interrupt
    from .live.report import render_validation
    from .live.validate import validate

    caps = _live_capabilities()
    policy = _auto_policy() if ns.policy == "auto" else ns.policy
    session = _session(ns, policy)
    if ns.random:
        from .live.sequences import KINDS, random_scenarios

        kinds = tuple(k for part in ns.kinds for k in part.split(",") if k) or KINDS
        unknown = sorted(set(kinds) - set(KINDS))
        if unknown:
            raise UsageError(f"unknown memory kind(s) {', '.join(unknown)}; known: {', '.join(KINDS)}")
        scenarios = [session.parse(text, f"random-{i}.scn")
                     for i, text in enumerate(random_scenarios(ns.random, ns.seed, kinds=kinds))]
    else:
        scenarios = _corpus(session, ns)
    bar = _progress("scenario")
    try:
        with terminations_interrupt():
            results = validate(session, scenarios, caps, bar)
    finally:
        bar.close()
    print(render_validation(results, session.policy.name, ns.format))
    failed = any(v.disagreements if ns.strict else v.disagrees for v in results)
    return ExitCode.FAILED if failed else ExitCode.OK


def _auto_policy() -> str:
    """The built-in era policy for the running kernel (``uname -r``): the newest whose
    ``era`` line starts at or before it."""
    import re

    from . import dsl
    from .live.validate import era_for, kernel_release

    eras: dict[str, tuple[int, int]] = {}
    for name, files in config.policy_files().items():
        # linux-6.x names the newest era: auto names the era itself
        if not re.fullmatch(r"linux-\d+\.\d+", name) or not files[0].is_relative_to(dsl.builtin_dir()):
            continue
        era = re.search(r'^era\s+"([^"]*)"', files[0].read_text(), re.M)
        first = re.search(r"(\d+)\.(\d+)", era.group(1)) if era else None
        if era and era.group(1).lstrip().startswith("<="):
            eras[name] = (0, 0)
        elif first:
            eras[name] = (int(first.group(1)), int(first.group(2)))
    release = kernel_release()
    chosen = era_for(release, eras)
    if chosen is None:
        raise UsageError(f"no built-in era policy describes Linux {release[0]}.{release[1]}")
    print(f"auto: Linux {release[0]}.{release[1]} -> {chosen}", file=sys.stderr)
    return chosen


def cmd_corpus(ns: argparse.Namespace) -> int:
    from . import report
    from ._manager import get_plugin_manager
    from .corpus import select
    skipped: list[tuple[str, str]] = []
    registry = _registry()
    scenarios = _load(registry, scenario_paths(ns.corpus or [], get_plugin_manager()), skipped)
    chosen = select(scenarios, ns.tag or (), ns.k, ns.variant or ())
    if ns.cow_c:
        from . import cowc
        print(cowc.render(cowc.coverage(chosen, registry.variants), ns.format))
    else:
        print(report.render_corpus(chosen, ns.format, skipped))
    return ExitCode.OK


def cmd_explain(ns: argparse.Namespace) -> int:
    from . import report

    session = _session(ns, ns.policy)
    if Path(ns.scenario).is_file():
        scn = session.load(ns.scenario, ns.variant)
    else:
        by_name = {s.name: s for s in _load(session.registry, scenario_paths([], session.pm), [])}
        if ns.variant and "/" not in ns.scenario:
            ns.scenario = f"{ns.scenario}/{ns.variant}"
        if ns.scenario not in by_name:
            from .errors import did_you_mean
            variants = sorted(n for n in by_name if n.startswith(ns.scenario + "/"))
            hint = (f"it has variants: {', '.join(variants)}" if variants
                    else did_you_mean(ns.scenario, by_name))
            raise PolicyKitError(f"{ns.scenario}: no such scenario file or corpus scenario"
                                 + (f"; {hint}" if hint else ""))
        scn = by_name[ns.scenario]
    print(report.render_explain(session.run(scn, trace=True), ns.format))
    return ExitCode.OK


def _search_setup(ns: argparse.Namespace, sessions: list[Session]):  # type: ignore[no-untyped-def]
    from .explore import Bounds, Space, starts

    bounds = Bounds(procs=ns.procs, pages=ns.pages, refs=ns.refs, depth=ns.depth,
                    max_states=ns.max_states or 0, time=ns.time or 0.0)
    ops = [o for item in ns.ops or () for o in item.split(",")]
    space = Space.build(sessions[0].registry, bounds, ops, ns.domain or (), [s.policy for s in sessions])
    variants = [v for item in ns.variants or () for v in item.split(",") if v]
    return space, starts(sessions, bounds, variants, getattr(ns, "from_path", None))


def _search_progress(ns: argparse.Namespace):  # type: ignore[no-untyped-def]
    if ns.format == "json" or not sys.stderr.isatty():
        return None
    from .explore.report import progress_line

    def show(st) -> None:  # type: ignore[no-untyped-def]
        print(f"\r{progress_line(st):<79}", end="", file=sys.stderr, flush=True)
    return show


def _command_line(argv: Sequence[str] | None) -> list[str]:
    return ["policykit"] + list(sys.argv[1:] if argv is None else argv)


def cmd_explore(ns: argparse.Namespace) -> int:
    from ._manager import load_policy
    from .run import Session
    from .explore import explore
    from .explore.report import render_explore
    from .explore.witness import finding_witness, write_file

    session = Session(load_policy(ns.policy))
    baseline = Session(load_policy(ns.baseline)) if ns.baseline else None
    space, start = _search_setup(ns, [session] + ([baseline] if baseline else []))
    progress = _search_progress(ns)
    res = explore(session, space, start, [i for item in ns.ignore or () for i in item.split(",")],
                  baseline, ns.jobs or 1, progress, first=ns.first)
    if progress is not None:
        print(file=sys.stderr)
    command = _command_line(ns.argv)
    for f in res.findings:
        name, text = finding_witness(session, f, command)
        if ns.out:
            f.file = write_file(ns.out, name, text)
    print(render_explore(res, ns.format, " ".join(command)))
    return ExitCode.FAILED if res.findings else ExitCode.OK


def cmd_diverge(ns: argparse.Namespace) -> int:
    from ._manager import load_policy
    from .run import Session
    from .explore import check_same_registry, diverge
    from .explore.report import render_diverge
    from .explore.witness import divergence_witness, write_file

    sessions = [Session(load_policy(p)) for p in ns.policies]
    if len(sessions) < 2:
        raise PolicyKitError("diverge needs two policies or more")
    check_same_registry(sessions)
    space, start = _search_setup(ns, sessions)
    progress = _search_progress(ns)
    res = diverge(sessions, space, start, ns.cost, ns.jobs or 1, progress)
    if progress is not None:
        print(file=sys.stderr)
    command = _command_line(ns.argv)
    if res.lines is not None:
        name, text = divergence_witness(sessions, res, command)
        if ns.out:
            res.file = write_file(ns.out, name, text)
    print(render_diverge(res, ns.format, " ".join(command)))
    return ExitCode.FAILED if res.lines is not None else ExitCode.OK


def _search_options(parser: argparse.ArgumentParser) -> None:
    from . import limits as b

    g = parser.add_argument_group("bounds")
    g.add_argument("--procs", metavar="N", type=_positive, default=b.EXPLORE_PROCS,
                   help=f"live named processes at most (default {b.EXPLORE_PROCS})")
    g.add_argument("--pages", metavar="N", type=_positive, default=b.EXPLORE_PAGES,
                   help=f"pages of the start mapping (default {b.EXPLORE_PAGES})")
    g.add_argument("--refs", metavar="N", type=_positive, default=b.EXPLORE_REFS,
                   help=f"live GUP references at most (default {b.EXPLORE_REFS})")
    g.add_argument("--depth", metavar="D", type=_positive, default=b.EXPLORE_DEPTH,
                   help=f"steps after the start state (default {b.EXPLORE_DEPTH})")
    g.add_argument("--max-states", metavar="N", type=_positive, help="stop after N distinct states")
    g.add_argument("--time", metavar="SECONDS", type=float, help="stop after SECONDS")
    s = parser.add_argument_group("what to try")
    s.add_argument("--ops", metavar="OP,...", action="append",
                   help="operations to use instead of the core's (OP, a plugin's name for all its "
                        "operations, +OP to add one, -OP to leave one out)")
    s.add_argument("--variants", metavar="V,...", action="append",
                   help="start from each variant's memory (see 'policykit corpus') instead of a private mapping")
    s.add_argument("--from", dest="from_path", metavar="SCENARIO",
                   help="start from the state after this scenario's steps")
    s.add_argument("--domain", metavar="OP.PARAM=V,...", action="append",
                   help="values to try for a parameter, e.g. fork_children.count=1024 or "
                        "gup.flags=-,write,write+longterm")
    parser.add_argument("-j", "--jobs", metavar="N", type=_positive,
                        help="expand each level on N processes (default 1); the result is the same")
    parser.add_argument("--out", metavar="DIR", help="write each witness as a .scn file into DIR")
    parser.add_argument("--format", choices=("table", "json"), default="table",
                        help="output format (default: table)")


_FORMATS = ("table", "json", "markdown", "github")


def _selection(parser: argparse.ArgumentParser, formats: Sequence[str] = _FORMATS) -> None:
    """The options that choose scenarios, the same on every command that runs them."""
    parser.add_argument("--corpus", metavar="PATH", action="append",
                        help="a scenario file or a directory of them, instead of the project's or the "
                             "built-in corpus (repeatable)")
    parser.add_argument("--tag", metavar="T", action="append", help="only scenarios tagged T (repeatable: all of them)")
    parser.add_argument("-k", metavar="PATTERN",
                        help="only scenarios whose name (NAME or NAME/VARIANT) matches: a glob or a substring")
    parser.add_argument("--variant", metavar="V", action="append",
                        help="only these variants of scenarios that have variants (repeatable)")
    parser.add_argument("--format", choices=formats, default="table",
                        help="output format (default: table; github: annotations for a workflow)")


def _jobs(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-j", "--jobs", metavar="N", type=_positive,
                        help="run on N processes (default: one per CPU this process may use)")


def _positive(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if n < 1:
        raise argparse.ArgumentTypeError("at least 1")
    return n


def _registry():  # type: ignore[no-untyped-def]
    """What the installed plugins declare (built once per process)."""
    from ._manager import plugin_registry
    return plugin_registry()


def cmd_check(ns: argparse.Namespace) -> int:
    from . import diagnostics

    registry = _registry()
    ignore = {c.strip().upper() for spec in ns.ignore or () for c in spec.split(",") if c.strip()}
    _check_codes(ignore)
    worst = ExitCode.OK
    findings: list[diagnostics.Finding] = []
    files = []
    for spec in ns.files:
        errors, warnings, what = (_check_scenario if spec.endswith(".scn") else _check_policy)(spec, registry)
        warnings = [w for w in warnings if w.code not in ignore]
        findings += [diagnostics.Finding.of(e) for e in (*errors, *warnings)]
        files.append({"file": spec, "ok": not errors, "errors": len(errors), "warnings": len(warnings),
                      "what": what})
        if ns.format == "text":
            for e in (*errors, *warnings):
                print(e.render(), file=sys.stderr)
            counts = f"{len(errors)} error{'s' * (len(errors) != 1)}, {len(warnings)} warning{'s' * (len(warnings) != 1)}"
            print(f"{spec}: {counts}" if errors else
                  f"{spec}: ok, {what}" + (f", {counts.split(', ')[1]}" if warnings else ""))
        if errors:
            worst = ExitCode.USAGE_ERROR
        elif warnings and ns.strict and worst == ExitCode.OK:
            worst = ExitCode.FAILED
    if ns.format != "text":
        out = diagnostics.render(findings, ns.format, files)
        if out:
            print(out)
    return worst


def _check_codes(codes: set[str]) -> None:
    from .codes import CODES, is_warning
    from .errors import did_you_mean

    for code in sorted(codes):
        if code not in CODES:
            hint = did_you_mean(code, CODES)
            raise PolicyKitError(f"--ignore {code}: no such code" + (f"; {hint}" if hint else "; see docs/codes.md"))
        if not is_warning(code):
            raise PolicyKitError(f"--ignore {code}: only warnings (PK4xx) can be ignored; {code} is an error")


def _check_policy(spec: str, registry) -> tuple[list, list, str]:  # type: ignore[no-untyped-def,type-arg]
    """A policy's errors and warnings (as SourceErrors), and what it is.  A policy that
    was checked clean and has not changed, nor anything it extends, is answered from the
    cache of compiled policies (:mod:`policykit.dsl.cache`) without checking it again; a
    clean one checked here is compiled and kept there."""
    from . import dsl
    from ._manager import load_checked
    from .dsl import cache

    text, filename = dsl.read_policy(spec)
    hit = cache.checked_clean(text, filename, registry, dsl.resolver())
    if hit is not None:
        (name, parents), errors, warnings = hit, [], []
    else:
        checked, found = dsl.check_text(text, filename, registry)
        errors = [d.error for d in found if d.severity == "error"]
        warnings = [d.error for d in found if d.severity != "error"]
        if checked is None or errors:
            return errors, warnings, ""
        if not found:
            load_checked(text, filename, registry, checked, clean=True)
        name, parents = checked.name, _chain_names(checked)
    return errors, warnings, f"policy {name}" + (f" (extends {', '.join(parents)})" if parents else "")


def _check_scenario(spec: str, registry) -> tuple[list, list, str]:  # type: ignore[no-untyped-def,type-arg]
    """A scenario file's errors and warnings (expect lines naming no known policy)."""
    from .errors import SourceError
    from .scenario import load_scenarios, unknown_policies

    try:
        scenarios = load_scenarios(spec, registry)
    except SourceError as exc:
        return list(getattr(exc, "errors", [exc])), [], ""
    names = sorted({s.name.split("/")[0] for s in scenarios})
    variants = sum(1 for s in scenarios if s.variant)
    return [], unknown_policies(scenarios, set(config.policy_names())), \
        f"scenario {', '.join(names)}" + (f" ({variants} variants)" if variants else "")


def _chain_names(checked) -> list[str]:  # type: ignore[no-untyped-def]
    from pathlib import Path as _P
    return [_P(f.filename).stem for f in reversed(checked.files[:-1])]


def cmd_compile(ns: argparse.Namespace) -> int:
    from . import dsl

    checked, diagnostics = dsl.check_file(ns.file, _registry())
    errors = [d for d in diagnostics if d.severity == "error"]
    for d in errors:
        print(d.render(), file=sys.stderr)
    if errors:
        return ExitCode.USAGE_ERROR
    assert checked is not None
    print(dsl.generate_source(checked), end="")
    return ExitCode.OK


def cmd_fmt(ns: argparse.Namespace) -> int:
    from . import dsl
    from .dsl.fmt import format_policy

    changed = 0
    for spec in ns.files:
        text, filename = dsl.read_policy(spec)
        formatted = format_policy(text, filename)
        if formatted == text:
            continue
        changed += 1
        if ns.check:
            print(f"would reformat {filename}")
        else:
            Path(filename).write_text(formatted, encoding="utf-8")
            print(f"reformatted {filename}", file=sys.stderr)
    if ns.check and changed:
        return ExitCode.FAILED
    return ExitCode.OK


def cmd_mutate(ns: argparse.Namespace) -> int:
    from . import dsl
    from .explore import Bounds
    from .mutate import OPERATORS, check_operators, mutate, search_survivors
    from .mutate.report import render

    operators = [o.strip() for o in ",".join(ns.operators).split(",")] if ns.operators else list(OPERATORS)
    check_operators(operators)                  # before anything is loaded
    checked, diagnostics = dsl.check_file(ns.policy, _registry())
    errors = [d for d in diagnostics if d.severity == "error"]
    if errors or checked is None:
        for d in errors:
            print(d.render(), file=sys.stderr)
        return ExitCode.USAGE_ERROR
    session = _session(ns, ns.policy)
    scenarios = _corpus(session, ns)
    result = mutate(checked, session, scenarios, operators, ns.sample, ns.jobs, _progress("mutant"))
    if ns.diverge_depth:
        bounds = Bounds(depth=ns.diverge_depth)
        search_survivors(result, checked, session, bounds, ns.out, _command_line(ns.argv), _progress("survivor"))
    print(render(result, ns.format))
    score = result.score(result.counts())
    if ns.fail_under is not None and (score is None or 100 * score < ns.fail_under):
        print(f"score {100 * (score or 0):.1f}% is under --fail-under {ns.fail_under:g}%", file=sys.stderr)
        return ExitCode.FAILED
    return ExitCode.OK


def cmd_show(ns: argparse.Namespace) -> int:
    from . import dsl
    from .dsl.fmt import format_resolved

    checked, diagnostics = dsl.check_file(ns.policy, _registry())
    errors = [d for d in diagnostics if d.severity == "error"]
    for d in errors:
        print(d.render(), file=sys.stderr)
    if errors or checked is None:
        return ExitCode.USAGE_ERROR
    print(format_resolved(checked), end="")
    return ExitCode.OK


def cmd_policies(ns: argparse.Namespace) -> int:
    import json

    from .terminal import table
    from . import dsl

    registry = _registry()
    builtin = dsl.builtin_dir()
    rows = []
    for name, files in config.policy_files().items():
        where = "built-in" if files[0].is_relative_to(builtin) else _short(files[0]).as_posix()
        row = {"name": name, "extends": "", "era": "", "summary": "", "file": where}
        if len(files) > 1:
            row["summary"] = f"(error: also defined in {_short(files[1]).as_posix()})"
            rows.append(row)
            continue
        if files[0].suffix == ".py":
            row.update(era="python", summary=(config.python_policy(files[0]) or ("", ""))[1])
            rows.append(row)
            continue
        checked, diagnostics = dsl.check_file(str(files[0]), registry)
        if checked is None or any(d.severity == "error" for d in diagnostics):
            row["summary"] = "(does not check)"
        else:
            row.update(extends=(_chain_names(checked) or [""])[0], era=checked.era,
                       summary=checked.summary + (" [unrealizable]" if checked.unrealizable else ""))
        rows.append(row)
    if ns.format == "json":
        print(json.dumps({"schema": "policykit.policies/1", "policies": rows}, indent=2))
    else:
        print(table([list(r.values()) for r in rows], ["policy", "extends", "era", "summary", "from"],
                       tablefmt="github" if ns.format == "markdown" else "simple"))
    return ExitCode.OK


def cmd_plugins(ns: argparse.Namespace) -> int:
    import json

    from ._manager import describe_plugins, get_plugin_manager
    from .terminal import table

    rows = describe_plugins(get_plugin_manager())
    if ns.format == "json":
        print(json.dumps({"schema": "policykit.plugins/1", "plugins": rows}, indent=2))
        return ExitCode.OK
    listed = [[r["name"], r["distribution"] or "-", r["version"] or "-", ", ".join(r["hooks"]),
               "\n".join(f"{k}: {', '.join(v)}" for k, v in r["adds"].items() if v)] for r in rows]
    print(table(listed, ["plugin", "distribution", "version", "hooks", "adds"],
                tablefmt="github" if ns.format == "markdown" else "simple"))
    return ExitCode.OK


def cmd_hooks(ns: argparse.Namespace) -> int:
    import json

    from .terminal import table
    from .hookdoc import hook_specs, render_markdown

    if ns.format == "markdown":
        print(render_markdown(), end="")
    elif ns.format == "json":
        print(json.dumps({"schema": "policykit.hooks/1", "hooks": hook_specs()}, indent=2))
    else:
        rows = [[h["name"], h["family"].split()[0].lower(),
                 ", ".join(m for m in ("firstresult", "historic") if h[m]), h["doc"].splitlines()[0]]
                for h in hook_specs()]
        print(table(rows, ["hook", "family", "options", "summary"]))
    return ExitCode.OK


def _run_limits(p: argparse.ArgumentParser) -> None:
    from .limits import RUN_TIMEOUT

    p.add_argument("--timeout", metavar="SECONDS", type=_positive_float, default=RUN_TIMEOUT,
                   help=f"time one run may take; past it the run gets an 'error' verdict naming the "
                        f"step, and the others go on (default: {RUN_TIMEOUT:g}; 0: no limit)")
    p.add_argument("--max-pages", metavar="N", type=int, default=None,
                   help="pages the simulated machine may hold in one run; past that, an 'error' "
                        "verdict (default: the scenario limits only, see docs/security.md)")


def _policy_arg(p: argparse.ArgumentParser, dest: str, **kwargs) -> argparse.Action:  # type: ignore[no-untyped-def]
    """A POLICY argument, completed (argcomplete) with the names on the policy path."""
    kwargs.setdefault("help", "a policy: a name on the policy path (see 'policykit policies'), a .pol "
                              "file, or a Python policy (*.py file or module name)")
    action = p.add_argument(dest, metavar="POLICY", **kwargs)
    action.completer = _complete_policies  # type: ignore[attr-defined]
    return action


def _complete_policies(prefix: str, **_: object) -> list[str]:
    return [n for n in config.policy_names() if n.startswith(prefix)]


def _verbosity(p: argparse.ArgumentParser) -> None:
    p.add_argument("-v", "--verbose", action="count", default=0,
                   help="-v: a row per run (variants apart) and every violation, expected or not; "
                        "-vv: every step of every run, as --trace")
    p.add_argument("-q", "--quiet", action="count", default=0, help="print the summary line only")


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r}: give a number of seconds, 0 for no limit")
    return value


def build_parser(pm=None, only: str | None = None) -> argparse.ArgumentParser:  # type: ignore[no-untyped-def]
    """The command line's parser, the plugins' options (``pm``) with it.  ``only``: that
    command's parser alone (all a run of it reads: each command's costs some 10 ms to
    build, at every start), else every command's (``policykit --help``, a mistyped one)."""
    parser = _Parser(prog="policykit", description="Judge Linux COW / page-pinning policies "
                     "on a simulated mm against a scenario corpus.")
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, add in COMMANDS.items():
        if only is None or name == only:
            add(sub, pm)
    for command in sub.choices.values():
        command.add_argument("--color", choices=("auto", "always", "never"), default="auto",
                             help="colour the output: auto (default: on a terminal, unless NO_COLOR is set), "
                                  "always, never")
        command.add_argument("--policy-path", metavar="DIR", action="append", default=[],
                             help=f"look for policies (NAME.pol) in DIR before ${PATH_ENV}, the project's "
                                  "[tool.policykit] policy-path and the built-in ones (repeatable)")
    return parser


def _scenario_options(parser: argparse.ArgumentParser, pm: Any) -> None:
    """What every command that runs scenarios takes besides its own: run limits, and the
    plugins' options."""
    _run_limits(parser)
    if pm is not None:
        pm.hook.policykit_addoption(parser=parser)


def _add_run(sub: Any, pm: Any) -> None:
    run = sub.add_parser(
        "run", help="run scenarios under one policy",
        description="Run scenarios under POLICY and judge each with the oracle.  Exit 0 when "
                    "every scenario met its expectation for this policy (or, with none, had "
                    "no violation) and kept its budget; 1 otherwise; 2 on bad input; 3 when "
                    "a plugin breaks.",
        epilog="examples:\n  policykit run policies/python/anon_exclusive.py\n"
               "  policykit run policies/python/copy_on_wp.py policykit/corpus/rdma-fork-child-exits.scn --trace",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    _policy_arg(run, "policy")
    run.add_argument("scenarios", metavar="SCENARIO", nargs="*",
                     help="scenario files or directories of *.scn (default: the project's corpus, or the "
                          "built-in one); the same as --corpus")
    run.add_argument("--trace", action="store_true",
                     help="print every step with the decisions taken and the pages' refcount/mapcount "
                          "(the same as -vv)")
    _verbosity(run)
    _selection(run)
    run.add_argument("--invariants", action="store_true",
                     help="check the engine's invariants after every step (slower)")
    run.set_defaults(func=cmd_run)
    _scenario_options(run, pm)


def _add_compare(sub: Any, pm: Any) -> None:
    comp = sub.add_parser(
        "compare", help="compare policies on the corpus",
        description="Run the corpus under each policy and put them side by side: per policy the "
                    "scenarios it gets right, the violations by class, the copies and bytes, the "
                    "excess over 'ideal', the rules never exercised; for each pair whether the later "
                    "is equivalent, stricter, looser or incomparable in correctness, and the cost "
                    "delta; then the scenarios, those where the policies differ first.  Exit 1 when "
                    "the last policy is wrong on a scenario the first gets right (a regression).",
        epilog="examples:\n  policykit compare linux-5.9 linux-5.19\n"
               "  policykit compare linux-5.9 my-variant.pol --only-diff --format markdown\n"
               "  policykit compare linux-5.18 linux-5.19 --tag swap",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    _policy_arg(comp, "policies", nargs="+", help="two or more policies (the first is the baseline)")
    _selection(comp)
    _jobs(comp)
    comp.add_argument("--only-diff", action="store_true", help="list only scenarios where the policies differ")
    comp.set_defaults(func=cmd_compare)
    _scenario_options(comp, pm)


def _add_score(sub: Any, pm: Any) -> None:
    score = sub.add_parser("score", help="score one policy on the corpus",
                           description="Run the corpus under POLICY: its summary and every scenario; "
                                       "exit 1 if a scenario misses its expectation for it or its budget.")
    _policy_arg(score, "policy")
    _selection(score)
    _jobs(score)
    score.set_defaults(func=cmd_score)
    _scenario_options(score, pm)


def _add_live(sub: Any, pm: Any) -> None:
    live = sub.add_parser(
        "live", help="run scenarios on this machine's kernel and show each step",
        description="Run each scenario on the running kernel: every process a forked agent driven "
                    "step by step, the memory mapped with mmap (THP, hugetlb, swap as the variant "
                    "says), pins as io_uring fixed buffers, pipes by vmsplice.  Each step shows how "
                    "each write was served (populate, no fault, reuse, copy), what each read saw, and "
                    "the pages each process maps (canonical labels, PageAnonExclusive, mapcount).  "
                    "Needs Linux; PFNs need root.  Exit 1 when a scenario cannot run live (listed "
                    "with the reason).",
        epilog="examples:\n  policykit live policykit/corpus/cow-basic.scn --variant base\n"
               "  policykit live -k rdma-fork --format json",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    live.add_argument("scenarios", metavar="SCENARIO", nargs="*",
                      help="scenario files or directories (default: the corpus); the same as --corpus")
    live.add_argument("--policy", metavar="POLICY",
                      help="the policy whose plugins read the scenarios (default: linux-6.x)")
    _selection(live, ("table", "json", "markdown"))
    live.set_defaults(func=cmd_live)


def _add_validate(sub: Any, pm: Any) -> None:
    val = sub.add_parser(
        "validate", help="check the simulator against this machine's kernel, step by step",
        description="Run every live-runnable scenario on the running kernel and under POLICY in the "
                    "simulator, and compare each step: the status, how each write was served, the "
                    "data each read saw, which pages are shared, PageAnonExclusive and mapcounts.  "
                    "Disagreements first, both traces side by side up to the first one; scenarios "
                    "the kernel cannot run here are listed with the reason.  POLICY 'auto' is the "
                    "built-in era policy for uname -r.  A scenario whose first disagreement is a "
                    "known kernel deviation (a kernel bug, documented; the simulator keeps the rule) "
                    "is reported apart.  Exit 1 on any other disagreement (--strict: on those too).",
        epilog="examples:\n  policykit validate auto\n  policykit validate linux-5.19 --tag rdma",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    _policy_arg(val, "policy", help="a policy, or 'auto' for this kernel's era")
    _selection(val, ("table", "json", "markdown"))
    val.add_argument("--random", metavar="N", type=_positive,
                     help="instead of the corpus, N random sequences of fork, exit, write, read, munmap, "
                          "mprotect, vmsplice, io_uring pins and device I/O, MADV_PAGEOUT")
    val.add_argument("--seed", metavar="S", type=int, default=0, help="the random sequences' seed (default 0)")
    val.add_argument("--kinds", metavar="K,...", action="append", default=[],
                     help="memory the random sequences map: base, thp, mthp (64 KiB), hugetlb, swap (default: all)")
    val.add_argument("--strict", action="store_true",
                     help="a known kernel deviation fails the run too")
    val.set_defaults(func=cmd_validate)


def _add_corpus(sub: Any, pm: Any) -> None:
    corpus = sub.add_parser("corpus", help="list the corpus",
                            description="List the scenarios of the built-in corpus (or of --corpus).")
    _selection(corpus, ("table", "json", "markdown"))
    corpus.add_argument("--cow-c", action="store_true",
                        help="map every test of the kernel's cow.c selftest, on every kind of memory it "
                             "runs on, to the scenario that stands for it, and say what is missing and why")
    corpus.set_defaults(func=cmd_corpus)


def _add_explain(sub: Any, pm: Any) -> None:
    explain = sub.add_parser("explain", help="explain every decision of one run",
                             description="Run SCENARIO (a file, or a corpus scenario's name) under POLICY "
                                         "and show each decision: the step, the decision point, the action, "
                                         "the rule that fired (file:line) and the state it read.")
    _policy_arg(explain, "policy")
    explain.add_argument("scenario", metavar="SCENARIO",
                         help="a scenario file, or the name of a corpus scenario (NAME or NAME/VARIANT)")
    explain.add_argument("--variant", metavar="V", help="for a scenario file with variants: the one to run")
    explain.add_argument("--format", choices=("table", "json", "markdown"), default="table")
    _run_limits(explain)
    explain.set_defaults(func=cmd_explain)


def _add_explore(sub: Any, pm: Any) -> None:
    exp = sub.add_parser(
        "explore", help="search for the shortest scenarios that break a policy",
        description="Search every sequence of operations within the bounds, breadth first, from a "
                    "process 'p' mapping 'buf' (or --variants, or --from), judging every step with "
                    "the oracle.  Report each distinct violation (class, and the decision point that "
                    "led to it) with its shortest witness, shrunk, and with --out write it as a "
                    "scenario.  Exit 0 when nothing was found within the bounds, 1 when something "
                    "was, 2 on bad input, 3 when a plugin breaks.",
        epilog="examples:\n  policykit explore linux-5.9 --depth 5\n"
               "  policykit explore linux-5.9 --ops -mprotect --ignore known --out found/\n"
               "  policykit explore linux-4.8 --ops +file --depth 4\n"
               "  policykit explore my.pol --baseline linux-6.x",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    _policy_arg(exp, "policy")
    exp.add_argument("--ignore", metavar="WHAT", action="append",
                     help="hide violations of a class, or whose witness has these steps in order "
                          "('gup * get write*; fork *'); 'known' hides what every kernel does "
                          "(docs/explore.md)")
    exp.add_argument("--baseline", metavar="POLICY",
                     help="hide violations that POLICY shows at the same step (counted)")
    exp.add_argument("--first", action="store_true",
                     help="stop at the first violation found (a shortest one) instead of searching on")
    _search_options(exp)
    exp.set_defaults(func=cmd_explore)


def _add_diverge(sub: Any, pm: Any) -> None:
    div = sub.add_parser(
        "diverge", help="search for the shortest scenario that tells policies apart",
        description="Run the policies in lock step over every sequence of operations within the "
                    "bounds, breadth first, and report the shortest on which their verdicts (with "
                    "--cost: or the pages they copy) differ: the decision traces side by side up to "
                    "the first decision that differs.  Exit 0 when none differ within the bounds, "
                    "1 when they do.",
        epilog="examples:\n  policykit diverge linux-5.9-rc4 linux-5.9\n"
               "  policykit diverge --cost jason-2020-refcount linus-2020-mapcount "
               "--ops +fork_children --domain fork_children.count=1024",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    _policy_arg(div, "policies", nargs="+", help="two policies or more")
    div.add_argument("--cost", action="store_true", help="differences in pages copied count too")
    _search_options(div)
    div.set_defaults(func=cmd_diverge)


def _add_check(sub: Any, pm: Any) -> None:
    check = sub.add_parser(
        "check", help="check policy and scenario files",
        description="Parse and check policies (and their extends chains) against the installed "
                    "engine and plugins, and scenario files (*.scn).  Errors and warnings go to "
                    "stderr with file:line:col and a code (docs/codes.md); with --format json, "
                    "sarif or github, to stdout in that format.  Exit 2 on any error (1 with "
                    "--strict on a warning).",
        epilog="examples:\n  policykit check my.pol scenarios/*.scn\n"
               "  policykit check my.pol --format sarif > policykit.sarif\n"
               "  policykit check my.pol --format github --ignore PK404",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    check.add_argument("files", metavar="FILE", nargs="+",
                       help=".pol files, names of policies on the policy path, or .scn files")
    check.add_argument("--strict", action="store_true", help="exit 1 when there are warnings")
    check.add_argument("--format", choices=("text", "json", "sarif", "github"), default="text",
                       help="text (default), json, sarif (SARIF 2.1.0, for code scanning) or github "
                            "(workflow commands that annotate the lines in a pull request)")
    check.add_argument("--ignore", metavar="CODE[,CODE]", action="append",
                       help="hide these warnings (PK4xx), e.g. --ignore PK404")
    check.set_defaults(func=cmd_check)


def _add_compile(sub: Any, pm: Any) -> None:
    comp = sub.add_parser("compile", help="print the Python a policy compiles to",
                          description="Check a policy and print the Python module it compiles to.")
    comp.add_argument("file", metavar="FILE", help="a .pol file or built-in policy name")
    comp.set_defaults(func=cmd_compile)


def _add_fmt(sub: Any, pm: Any) -> None:
    fmt = sub.add_parser("fmt", help="format policy files",
                         description="Rewrite policy files in the canonical layout (comments kept). "
                                     "With --check, change nothing and exit 1 if a file would change.")
    fmt.add_argument("files", metavar="FILE", nargs="+", help=".pol files")
    fmt.add_argument("--check", action="store_true", help="only report files that would change")
    fmt.set_defaults(func=cmd_fmt)


def _add_mutate(sub: Any, pm: Any) -> None:
    mut = sub.add_parser(
        "mutate", help="how much of a policy the corpus checks (mutation testing)",
        description="Mutate POLICY (its extends chain resolved) one token at a time -- negate a guard, "
                    "and<->or, another comparison, a constant +-1 / 0 (1024: 1023, 1025, 512), drop a rule, "
                    "drop a conjunct, another action, another attribute of the same type, swap adjacent "
                    "rules, drop a flag effect -- and run each mutant on the corpus: it is killed when a "
                    "scenario's verdict, or its costs (copies, faults, plugin metrics), differ from the "
                    "original's.  Prints the score per decision point and the survivors; with "
                    "--diverge-depth, diverge searches each survivor for a scenario the corpus lacks.",
        epilog="examples:\n  policykit mutate linux-6.x\n"
               "  policykit mutate linux-5.9 --operators negate,cmp --sample 100 --format json\n"
               "  policykit mutate my.pol --diverge-depth 5 --out gaps/ --fail-under 90",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    _policy_arg(mut, "policy")
    _selection(mut, ("table", "json", "markdown"))
    _jobs(mut)
    mut.add_argument("--operators", metavar="OP,...", action="append",
                     help="mutation operators to use (default: all): negate, andor, cmp, const, drop-rule, "
                          "drop-conjunct, action, attr, swap, drop-effect")
    mut.add_argument("--sample", metavar="N", type=_positive, help="run N mutants chosen at random (fixed seed)")
    mut.add_argument("--diverge-depth", metavar="D", type=int, default=0,
                     help="search each survivor with diverge to depth D (default 0: no search)")
    mut.add_argument("--out", metavar="DIR", help="write each survivor's killing scenario (.scn) into DIR")
    mut.add_argument("--fail-under", metavar="PCT", type=float, help="exit 1 when the score is under PCT percent")
    _run_limits(mut)
    mut.set_defaults(func=cmd_mutate)


def _add_show(sub: Any, pm: Any) -> None:
    show = sub.add_parser("show", help="print a policy with its extends chain resolved",
                          description="Print POLICY (a .pol file or a built-in name) as one policy file "
                                      "with its extends chain resolved: the constants, flags, predicates "
                                      "and blocks in force.  It checks, and runs as the chain does.",
                          epilog="example:\n  policykit show linux-6.x > linux-6.x-flat.pol",
                          formatter_class=argparse.RawDescriptionHelpFormatter)
    _policy_arg(show, "policy")
    show.set_defaults(func=cmd_show)


def _add_policies(sub: Any, pm: Any) -> None:
    pols = sub.add_parser("policies", help="list the policies on the policy path",
                          description="List the policies on the policy search path (--policy-path, "
                                      f"${PATH_ENV}, [tool.policykit] policy-path) and the built-in ones, "
                                      "with what they extend, a summary and where each comes from.")
    pols.add_argument("--format", choices=("table", "json", "markdown"), default="table")
    pols.set_defaults(func=cmd_policies)


def _add_plugins(sub: Any, pm: Any) -> None:
    plugins = sub.add_parser(
        "plugins", help="list the installed plugins and what each adds",
        description="List the installed plugins: distribution and version, the hooks each "
                    "implements, and the decision points, attributes, operations, metrics and "
                    "violation classes each adds.  POLICYKIT_TRACE_HOOKS=1 traces every hook call.")
    plugins.add_argument("--format", choices=("table", "json", "markdown"), default="table")
    plugins.set_defaults(func=cmd_plugins)


def _add_hooks(sub: Any, pm: Any) -> None:
    hooks = sub.add_parser("hooks", help="list the hooks plugins can implement",
                           description="The hook reference: every policykit_* hook, when it is "
                                       "called, its parameters and what its return means.")
    hooks.add_argument("--format", choices=("table", "json", "markdown"), default="table")
    hooks.set_defaults(func=cmd_hooks)


#: each command's name, and what adds its parser (in the order --help lists them)
COMMANDS: dict[str, Callable[[Any, Any], None]] = {
    "run": _add_run,
    "compare": _add_compare,
    "score": _add_score,
    "live": _add_live,
    "validate": _add_validate,
    "corpus": _add_corpus,
    "explain": _add_explain,
    "explore": _add_explore,
    "diverge": _add_diverge,
    "check": _add_check,
    "compile": _add_compile,
    "fmt": _add_fmt,
    "mutate": _add_mutate,
    "show": _add_show,
    "policies": _add_policies,
    "plugins": _add_plugins,
    "hooks": _add_hooks,
}


def main(argv: Sequence[str] | None = None) -> int:
    from .guard import watch_interrupts

    with watch_interrupts():        # a plugin's KeyboardInterrupt is its fault, not a Ctrl-C
        return _main(argv)


def console() -> NoReturn:
    """The ``policykit`` command (and ``python -m policykit``): :func:`main`, then out
    without tearing the interpreter down.  Freeing every object a corpus run made, one
    by one, costs some 30 ms at exit that nothing needs (mypy leaves the same way): the
    output is flushed and the ``atexit`` functions run first, and a process that still
    runs threads of its own exits the usual way."""
    code = main()
    try:
        sys.stdout.flush()
    except BrokenPipeError:             # `policykit ... | head`: what main says of it
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except OSError:
        code = code or ExitCode.INTERNAL_ERROR
    try:
        sys.stderr.flush()
    except (OSError, ValueError):       # closed after a broken pipe
        pass
    import threading

    if threading.active_count() > 1:
        raise SystemExit(code)
    import atexit

    atexit._run_exitfuncs()             # what a normal exit runs (coverage saves its data)
    os._exit(code)


#: commands that run no scenario: the plugins' options and configure hook are not theirs
#: (those that check against the plugins' declarations still read them)
_WITHOUT_PLUGIN_OPTIONS = {"check", "fmt", "compile", "show", "policies", "hooks"}


def _main(argv: Sequence[str] | None) -> int:
    from .guard import stops_the_run

    parsed = False
    args = list(sys.argv[1:] if argv is None else argv)
    if args == ["--version"]:           # at once: no plugins, no engine
        from ._version import __version__
        print(f"policykit {__version__}")
        return ExitCode.OK
    try:
        pm = None
        command = next((a for a in args if not a.startswith("-")), None)
        if command not in _WITHOUT_PLUGIN_OPTIONS:
            from ._manager import get_plugin_manager

            pm = get_plugin_manager()   # plugins may add options, and configure themselves
        completing = "_ARGCOMPLETE" in os.environ
        parser = build_parser(pm, only=command if command in COMMANDS and not completing else None)
        if completing:                  # the shell asks for completions (argcomplete)
            try:
                import argcomplete
            except ImportError:
                return ExitCode.USAGE_ERROR
            argcomplete.autocomplete(parser)
        try:
            ns = parser.parse_args(argv)
        except SystemExit as exc:       # --help (0) or a usage error (2)
            return int(exc.code or 0)
        parsed = True
        ns.argv = argv
        config.use(getattr(ns, "policy_path", ()) or ())
        from .terminal import use_color
        use_color(getattr(ns, "color", "auto"))
        if pm is not None:
            pm.hook.policykit_configure.call_historic(kwargs={"config": ns})
        if ns.version:
            from ._version import __version__
            print(f"policykit {__version__}")
            return ExitCode.OK
        if ns.command is None:
            parser.print_help(sys.stderr)
            return ExitCode.USAGE_ERROR
        return int(ns.func(ns))
    except PolicyKitError as exc:
        print(exc.render(), file=sys.stderr)
        return exc.exit_code
    except BrokenPipeError:          # `policykit ... | head`
        sys.stderr.close()
        return ExitCode.OK
    except BaseException as exc:
        if stops_the_run(exc):       # the user's Ctrl-C
            print("interrupted", file=sys.stderr)
            return ExitCode.INTERNAL_ERROR
        if os.environ.get("POLICYKIT_DEBUG"):
            raise
        if not isinstance(exc, Exception):   # SystemExit, KeyboardInterrupt... from a plugin
            where = "while running the command" if parsed else "while loading plugins"
            print(f"error: a plugin raised {type(exc).__name__}({_arg(exc)}) {where}: that is a plugin "
                  "error, not a result (set POLICYKIT_DEBUG=1 for a traceback)", file=sys.stderr)
            return ExitCode.INTERNAL_ERROR
        # a bug: say so briefly, traceback only on request
        print(f"internal error: {type(exc).__name__}: {exc} (set POLICYKIT_DEBUG=1 for a traceback)",
              file=sys.stderr)
        return ExitCode.INTERNAL_ERROR


def _arg(exc: BaseException) -> str:
    return ", ".join(repr(a) for a in exc.args)
