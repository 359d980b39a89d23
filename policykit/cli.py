"""Command line: a thin dispatcher over the library.  Results go to stdout, diagnostics
and progress to stderr; the exit code is an :class:`ExitCode`."""

from __future__ import annotations

import argparse
import enum
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from . import report
from ._manager import load_policy
from .errors import PolicyKitError
from .run import Session

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


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        self.exit(ExitCode.USAGE_ERROR, f"{self.prog}: error: {message}\n")


def scenario_paths(args: Sequence[str]) -> list[Path]:
    """Files as given; directories expand to their ``*.scn`` files; none: the built-in corpus."""
    if not args:
        corpus = os.path.relpath(CORPUS_DIR)
        args = [corpus if not corpus.startswith("..") else str(CORPUS_DIR)]
    out: list[Path] = []
    for a in args:
        p = Path(a)
        if p.is_dir():
            out.extend(sorted(p.glob("*.scn")))
        else:
            out.append(p)
    return out


def _progress(i: int, n: int, what: str) -> None:
    if n > 20 and sys.stderr.isatty():
        print(f"\r[{i}/{n}] {what[:60]:<60}", end="" if i < n else "\n", file=sys.stderr)


def cmd_run(ns: argparse.Namespace) -> int:
    session = Session(load_policy(ns.policy))
    scenarios = [session.load(str(p)) for p in scenario_paths(ns.scenarios)]
    results = []
    for i, scn in enumerate(scenarios, 1):
        _progress(i, len(scenarios), scn.name)
        results.append(session.run(scn, trace=ns.trace, invariants=ns.invariants))
    out = [report.render_runs(results, ns.format)]
    if ns.trace and ns.format != "json":
        out.extend("\n" + report.render_trace(r, ns.format) for r in results)
    print("\n".join(out))
    return ExitCode.OK if all(r.passed for r in results) else ExitCode.FAILED


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="policykit", description="Judge Linux COW / page-pinning policies "
                     "on a simulated mm against a scenario corpus.")
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    run = sub.add_parser(
        "run", help="run scenarios under one policy",
        description="Run scenarios under POLICY and judge each with the oracle.  Exit 0 when "
                    "every scenario met its expectation for this policy (or, with none, had "
                    "no violation) and kept its budget; 1 otherwise; 2 on bad input; 3 when "
                    "a plugin breaks.",
        epilog="examples:\n  policykit run policies/python/anon_exclusive.py\n"
               "  policykit run policies/python/copy_on_wp.py policykit/corpus/rdma-fork-child-exits.scn --trace",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    run.add_argument("policy", metavar="POLICY", help="a policy: Python module file (*.py) or module name")
    run.add_argument("scenarios", metavar="SCENARIO", nargs="*",
                     help="scenario files or directories of *.scn (default: the built-in corpus)")
    run.add_argument("--trace", action="store_true",
                     help="print every step with the decisions taken and the pages' refcount/mapcount")
    run.add_argument("--format", choices=("table", "json", "markdown"), default="table",
                     help="output format (default: table)")
    run.add_argument("--invariants", action="store_true",
                     help="check the engine's invariants after every step (slower)")
    run.set_defaults(func=cmd_run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        ns = parser.parse_args(argv)
    except SystemExit as exc:       # --help (0) or a usage error (2)
        return int(exc.code or 0)
    if ns.version:
        from . import __version__
        print(f"policykit {__version__}")
        return ExitCode.OK
    if ns.command is None:
        parser.print_help(sys.stderr)
        return ExitCode.USAGE_ERROR
    try:
        return int(ns.func(ns))
    except PolicyKitError as exc:
        print(exc.render(), file=sys.stderr)
        return exc.exit_code
    except BrokenPipeError:          # `policykit ... | head`
        sys.stderr.close()
        return ExitCode.OK
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return ExitCode.INTERNAL_ERROR
    except Exception as exc:  # a bug: say so briefly, traceback only on request
        if os.environ.get("POLICYKIT_DEBUG"):
            raise
        print(f"internal error: {type(exc).__name__}: {exc} (set POLICYKIT_DEBUG=1 for a traceback)",
              file=sys.stderr)
        return ExitCode.INTERNAL_ERROR
