"""Fuzzing what policykit takes from users: generators of policies and scenarios, and the
properties every input must have.

* Nothing raises: a policy or scenario either checks or gets diagnostics, and the CLI
  exits 0, 1 or 2 on it -- never 3, never a traceback.
* ``fmt`` round-trips (``parse(fmt(t)) == parse(t)``), is idempotent, and keeps the
  diagnostics of a policy.
* Whatever checks also runs: a policy that checks, or a scenario that checks, gets no
  ``error`` verdict on the runs tried (a built-in policy's, or built-in scenarios').
* Valid operation sequences (a random walk over explore's operations) break no engine
  invariant and get no ``error`` verdict under any built-in policy.

tests/test_fuzz.py runs a few hundred cases; ``python bench/fuzz.py --minutes N`` runs for
minutes.  The generators need hypothesis (the ``test`` extra); the properties do not.
"""

from __future__ import annotations

import contextlib
import functools
import io
import random
import re
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from ._manager import load_policy
from .cli import main
from .dsl import builtin_names, builtin_path, check_policy, parse_policy, resolver
from .dsl.fmt import format_policy
from .errors import PolicyKitError, SourceError
from .run import RunResult, Session

CORPUS = Path(__file__).parent / "corpus"
#: built-in scenarios a fuzzed policy that checks is run on
POLICY_RUNS = ("cow-basic.scn", "rdma-fork-child-exits.scn", "vmsplice-child-unmap.scn", "o-direct-fork.scn",
               "ro-pin-shared.scn", "shared-anon-pin-fork.scn")
#: built-in policies a fuzzed scenario that checks is run under
SCENARIO_POLICIES = ("linux-6.x", "linux-5.7", "copy-at-fork", "never-copy")


class Broken(AssertionError):
    """An input broke a property; the message says which and how."""


# -- properties ---------------------------------------------------------------------------

@contextlib.contextmanager
def _quiet() -> Iterator[io.StringIO]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        yield out


def cli(*argv: str) -> int:
    """``policykit ARGV`` in this process; Broken unless it exits 0, 1 or 2."""
    with _quiet() as out:
        code = main(list(argv))
    if code not in (0, 1, 2) or "Traceback" in out.getvalue() or "internal error" in out.getvalue():
        raise Broken(f"policykit {' '.join(argv)} exited {code}:\n{out.getvalue()[-2000:]}")
    return code


@functools.cache
def _registry() -> Any:
    from ._manager import plugin_registry
    return plugin_registry(None)


def _diagnostics(text: str, filename: str) -> list[tuple[str, str]] | None:
    """(severity, message) of every diagnostic, or None when it does not parse."""
    try:
        tree = parse_policy(text, filename)
    except SourceError:
        return None
    _, diags = check_policy(tree, _registry(), resolver())
    return sorted((d.severity, d.error.message) for d in diags)


def check_policy_text(text: str, workdir: Path) -> str:
    """Every property of one policy text; returns how far it got ("syntax", "check",
    "run")."""
    path = workdir / "fuzzed.pol"
    path.write_text(text, encoding="utf-8")
    name = str(path)
    try:
        tree = parse_policy(text, name)
    except SourceError:
        cli("check", name)
        return "syntax"
    except Exception as exc:
        raise Broken(f"parsing raised {type(exc).__name__}: {exc}") from exc
    formatted = format_policy(text, name)
    if parse_policy(formatted, name) != tree:
        raise Broken(f"fmt changed the policy:\n{formatted}")
    if format_policy(formatted, name) != formatted:
        raise Broken(f"fmt is not idempotent:\n{formatted}")
    before = _diagnostics(text, name)
    code = cli("check", name)
    if any(sev == "error" for sev, _ in before or ()):
        if code != 2:
            raise Broken(f"check exited {code} on a policy with errors")
        return "check"
    if _diagnostics(formatted, name) != before:
        raise Broken(f"fmt changed the diagnostics: {before} -> {_diagnostics(formatted, name)}")
    try:
        session = Session(load_policy(name))
    except PolicyKitError as exc:       # e.g. a Python hook name no plugin provides
        raise Broken(f"a policy that checks does not load: {exc.render()}") from exc
    for file in POLICY_RUNS:
        for scn in session.load_all(str(CORPUS / file), []):
            _no_error(session.run(scn, invariants=True, timeout=30), f"under the fuzzed policy:\n{text}")
    return "run"


def check_scenario_text(text: str, workdir: Path) -> str:
    """Every property of one scenario text; returns how far it got ("check", "run")."""
    path = workdir / "fuzzed.scn"
    path.write_text(text, encoding="utf-8")
    code = cli("run", "linux-6.x", str(path), "--timeout", "30")
    session = _session("linux-6.x")
    try:
        scenarios = session.load_all(str(path), [])
    except SourceError:
        if code != 2:
            raise Broken(f"run exited {code} on a scenario that does not check") from None
        return "check"
    for policy in SCENARIO_POLICIES:
        s = _session(policy)
        for scn in scenarios:
            _no_error(s.run(scn, invariants=True, timeout=30), f"under {policy}:\n{text}")
    return "run"


def _no_error(result: RunResult, where: str) -> None:
    errors = [v for v in result.violations if v.cls == "error"]
    if errors:
        raise Broken(f"{result.scenario.name}: error verdict ({errors[0].detail}) {where}")


@functools.cache
def _session(policy: str) -> Session:
    return Session(load_policy(policy))


# -- random valid runs --------------------------------------------------------------------

def random_scenario(rng: random.Random, length: int = 12) -> str:
    """A valid scenario: a random walk over every operation explore knows (core and
    plugins, setup operations included), from a process mapping 1-3 pages."""
    from .scenario import scenario_from_text

    session = _session("linux-6.x")
    space = _walk_space()
    lines = ["spawn -> p", f"mmap p {rng.randint(1, 3)} {rng.choice(('private', 'private', 'shared'))} -> buf"]
    runner = session.start()
    for i, step in enumerate(scenario_from_text("\n".join(lines) + "\n", "<walk>", session.registry).steps):
        runner.step(i, step)
    for depth in range(1, rng.randint(2, length) + 1):
        steps = space.steps(runner, depth)
        if not steps:
            break
        step = rng.choice(steps)
        runner.step(len(lines), step)
        lines.append(step.text)
    return "\n".join(lines) + "\n"


@functools.cache
def _walk_space() -> Any:
    from .explore import Bounds, Space

    registry = _session("linux-6.x").registry
    ops = ["+" + name for name in registry.operations if name != "fail_alloc"]
    return Space.build(registry, Bounds(procs=3, pages=3, refs=3, depth=64, maps=2), ops=ops)


def check_random_run(text: str) -> None:
    """A valid scenario under every built-in policy, invariants on: no error verdict."""
    from .scenario import scenario_from_text

    for policy in builtin_names():
        s = _session(policy)
        result = s.run(scenario_from_text(text, "walk.scn", s.registry), invariants=True, timeout=30)
        _no_error(result, f"under {policy}:\n{text}")


# -- generators (hypothesis) ------------------------------------------------------------

#: names a hostile policy likes: keywords, engine fields, dunders, context objects
WEIRD_NAMES = ("if", "def", "lambda", "None", "True", "class", "import", "page", "mm", "pte", "vma", "foll",
               "ctx", "count", "index", "pfn", "folio", "attrs", "flags", "f_x", "c_page", "v_x", "p_x",
               "Decision", "Effect", "__class__", "_x", "exec", "eval", "x", "y", "anon_exclusive",
               "refcount", "GUP_PIN_COUNTING_BIAS")
#: tokens for mutating policies and scenarios, the odd characters included
VOCAB = ("and", "or", "not", "->", "otherwise", "true", "false", "(", ")", "{", "}", "[", "]", ",", ".",
         "=", "==", "<=", ">", "+", "-", "*", "#", '"', "on", "pred", "const", "flag", "extends", "set",
         "clear", "warn", "0", "1", "1024", "9" * 30, "\n", "\t", "\r\n", "\x0b", "\x0c", "\u2028", "\u00e9",
         "\x00", "page.refcount", "mm.has_pinned", "-> copy", "otherwise -> share", "linux-5.9",
         '"/etc/passwd"', "wp_fault", "fork_pte") + WEIRD_NAMES
_TOKENS = re.compile(r"\s+|\w+|->|[<>=!]=|[^\w\s]")


def _mutate(text: str, rng: random.Random, n: int) -> str:
    tokens = _TOKENS.findall(text)
    for _ in range(n):
        if not tokens:
            tokens.append(rng.choice(VOCAB))
            continue
        i = rng.randrange(len(tokens))
        how = rng.randrange(4)
        if how == 0:
            del tokens[i]
        elif how == 1:
            tokens.insert(i, tokens[i])
        elif how == 2:
            tokens[i] = rng.choice(VOCAB)
        else:
            tokens.insert(i, rng.choice(VOCAB) + rng.choice(("", " ", "\n")))
    return "".join(tokens)


def policy_texts() -> Any:
    """Policies: built-in ones with a few tokens mutated, and ones generated from the
    grammar with hostile names, deep and long expressions, chains of predicates."""
    from hypothesis import strategies as st

    names = sorted(builtin_names())

    @st.composite
    def mutated(draw: Any) -> str:
        text = builtin_path(draw(st.sampled_from(names))).read_text(encoding="utf-8")  # type: ignore[union-attr]
        rng = random.Random(draw(st.integers(0, 2**32)))
        return _mutate(text, rng, draw(st.integers(1, 4)))

    return st.one_of(mutated(), generated_policies())


def generated_policies() -> Any:
    from hypothesis import strategies as st

    registry = _registry()
    points = sorted(registry.decision_points)
    attrs = sorted(f"{o}.{n}" for (o, n) in registry.attributes) + ["page.x", "mm.x", "page.if", "page.count"]
    name = st.one_of(st.sampled_from(WEIRD_NAMES), st.from_regex(r"[a-z][a-z0-9_]{0,6}", fullmatch=True))
    atom = st.one_of(st.sampled_from(("true", "false", "0", "1", "1024", "9" * 25)), st.sampled_from(attrs),
                     name, name.map(lambda n: f"{n}(page)"))

    def combine(children: Any) -> Any:
        return st.one_of(
            st.tuples(children, st.sampled_from(("and", "or", "==", "!=", "<", ">=", "+", "-", "*")),
                      children).map(" ".join),
            children.map(lambda c: f"not {c}"), children.map(lambda c: f"({c})"))

    expr = st.recursive(atom, combine, max_leaves=24)
    chain = st.tuples(st.sampled_from(("and", "or", "+", "-")), st.integers(2, 300)).map(
        lambda t: f" {t[0]} ".join(["page.refcount > 1" if t[0] in ("and", "or") else "1"] * t[1]))
    nesting = st.integers(1, 200).map(lambda n: "(" * n + "true" + ")" * n)
    condition = st.one_of(expr, chain, nesting)

    def block(point: str, rules: list[tuple[str, str, str]], last: str | None) -> str:
        spec = registry.decision_points.get(point)
        actions = spec.actions if spec is not None else ("copy",)
        body = "".join(f"    {c} -> {actions[i % len(actions)] if a == '' else a}{e}\n"
                       for i, (c, a, e) in enumerate(rules))
        if last is not None:
            body += f"    otherwise -> {actions[0] if last == '' else last}\n"
        return f"on {point} {{\n{body}}}\n"

    effects = st.sampled_from(("", " [set page.x]", " [clear page.x]", " [set page.x = 2]", " [set mm.x]",
                               " [set page.refcount = 1]", ' [warn "w"]', " [set page.if]"))
    rule = st.tuples(condition, st.sampled_from(("", "", "", "reuse", "nope", "__import__")), effects)
    item = st.one_of(
        st.tuples(name, expr).map(lambda t: f"const {t[0]} = {t[1]}\n"),
        st.tuples(st.sampled_from(("page", "mm", "pte")), name, st.sampled_from(("true", "false", "0", "7")))
          .map(lambda t: f"flag {t[0]}.{t[1]} = {t[2]}\n"),
        st.tuples(name, st.sampled_from(("page", "page, mm", "x: int", "")), condition)
          .map(lambda t: f"pred {t[0]}({t[1]}) = {t[2]}\n"),
        st.tuples(st.sampled_from(points + ["nowhere"]), st.lists(rule, max_size=4),
                  st.sampled_from(("", "", "share", None))).map(lambda t: block(*t)),
        st.integers(2, 60).map(_predicate_chain),
    )
    head = st.sampled_from(["linux-6.x", "linux-5.9", "copy-at-fork", '"/etc/passwd"', '"fuzzed.pol"', "nope"])
    return st.tuples(head, st.lists(item, max_size=6)).map(
        lambda t: f"policy fuzzed\nextends {t[0]}\nflag page.x = false\nflag mm.x = false\n" + "".join(t[1]))


def _predicate_chain(n: int) -> str:
    lines = ["pred q0(page) = page.refcount > 1\n"]
    lines += [f"pred q{i}(page) = q{i - 1}(page) or q{i - 1}(page)\n" for i in range(1, n)]
    return "".join(lines) + f"on wp_fault {{\n    q{n - 1}(page) -> copy\n    otherwise -> copy\n}}\n"


def scenario_texts() -> Any:
    """Scenarios: built-in ones with a few tokens mutated, random valid walks with a
    token mutated, and lines put together from the operations' words."""
    from hypothesis import strategies as st

    files = sorted(p.name for p in CORPUS.glob("*.scn"))
    registry = _registry()
    ops = sorted(registry.operations)
    word = st.sampled_from(("p", "c", "buf", "buf[0]", "buf[0:2]", "buf[5]", "r", "f", "1", "2", "0",
                            "99999999999999999999", "1048576", "4096", "private", "shared", "ro", "rw",
                            "write", "longterm", "force", "fast", "on", "off", "->", "#", "\x0b"))

    @st.composite
    def mutated(draw: Any) -> str:
        text = (CORPUS / draw(st.sampled_from(files))).read_text(encoding="utf-8")
        rng = random.Random(draw(st.integers(0, 2**32)))
        return _mutate(text, rng, draw(st.integers(1, 3)))

    line = st.tuples(st.sampled_from(ops), st.lists(word, max_size=5)).map(lambda t: " ".join([t[0], *t[1]]))
    built = st.lists(line, max_size=10).map(lambda ls: "spawn -> p\nmmap p 2 private -> buf\n" + "\n".join(ls) + "\n")
    walk = st.integers(0, 2**32).map(lambda seed: random_scenario(random.Random(seed)))
    return st.one_of(mutated(), built, walk)


def workdir() -> tempfile.TemporaryDirectory[str]:
    """A directory for the files the CLI is run on."""
    return tempfile.TemporaryDirectory(prefix="policykit-fuzz-")


def summarize(stages: Sequence[str]) -> str:
    counts: dict[str, int] = {}
    for s in stages:
        counts[s] = counts.get(s, 0) + 1
    return ", ".join(f"{n:,} {k}" for k, n in sorted(counts.items()))
