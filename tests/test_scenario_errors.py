"""Every kind of scenario mistake is reported at its place, with a hint."""

from __future__ import annotations

import pytest
from conftest import session

from policykit import ScenarioError

HEAD = "spawn -> p\nmmap p 2 private -> buf\n"

CASES = [
    # (id, text, line, column, message part, hint part)
    ("unknown-process", HEAD + "write chld buf\n", 3, 7, "unknown process 'chld'", "known: p"),
    ("process-typo", HEAD + "fork p -> child\nwrite chlid buf\n", 4, 7, "unknown process 'chlid'", "did you mean 'child'"),
    ("unknown-operation", HEAD + "writ p buf\n", 3, 1, "unknown operation 'writ'", "did you mean 'write'"),
    ("unknown-region", HEAD + "write p bf\n", 3, 9, "unknown region 'bf'", "did you mean 'buf'"),
    ("index-out-of-range", HEAD + "write p buf[2]\n", 3, 9, "out of range", "0..1"),
    ("empty-slice", HEAD + "write p buf[1:1]\n", 3, 9, "out of range", "0..1"),
    ("word-typo", "spawn -> p\nmmap p 1 privat -> buf\n", 2, 10, "unknown sharing 'privat'", "did you mean 'private'"),
    ("unknown-flag", HEAD + "pin p buf write longtrem -> r\n", 3, 17, "unknown flags 'longtrem'", "did you mean 'longterm'"),
    ("missing-argument", HEAD + "write p\n", 3, 8, "'write' needs a region", "usage: write PROCESS REGION"),
    ("missing-result", HEAD + "fork p\n", 3, 7, "needs a name for its result", "-> PROCESS"),
    ("result-without-arrow", HEAD + "fork p child\n", 3, 8, "too many arguments", "-> child"),
    ("unwanted-result", HEAD + "write p buf -> x\n", 3, 16, "has no result to name", "usage: write"),
    ("name-reused", HEAD + "fork p -> buf\n", 3, 11, "'buf' is already a region", "give every name once"),
    ("exited-process", HEAD + "exit p\nread p buf\n", 4, 6, "exited at line 3", None),
    ("unmapped", HEAD + "munmap p buf[1]\nread p buf\n", 4, 8, "page 1 of 'buf' is not mapped", "munmap at line 3"),
    ("dontfork", HEAD + "madvise p buf dontfork\nfork p -> c\nread c buf[0]\n", 5, 8, "not mapped in 'c'", "MADV_DONTFORK at line 3"),
    ("write-read-only", HEAD + "mprotect p buf ro\nwrite p buf\n", 4, 9, "write to read-only page 0", "made read-only at line 3"),
    ("gup-write-read-only", HEAD + "mprotect p buf ro\npin p buf write -> r\n", 4, 7, "FOLL_WRITE on read-only page", "force"),
    ("wipeonfork-shared", "spawn -> p\nmmap p 1 shared -> s\nmadvise p s wipeonfork\n", 3, 13, "MADV_WIPEONFORK on a shared", "EINVAL"),
    ("unknown-ref", HEAD + "dma_read mr\n", 3, 10, "unknown reference 'mr'", "gup"),
    ("ref-after-unpin", HEAD + "pin p buf -> r\nunpin r\ndma_read r\n", 5, 10, "dropped at line 4", "after unpin"),
    ("ref-after-owner-exit", HEAD + "fork p -> c\npin c buf -> r\nexit c\ndma_read r\n", 6, 10, "dropped at line 5", None),
    ("put-a-pin", HEAD + "pin p buf -> r\nput r\n", 4, 5, "FOLL_PIN reference", "unpin r"),
    ("unpin-a-get", HEAD + "vmsplice p buf -> r\nunpin r\n", 4, 7, "FOLL_GET reference", "put r"),
    ("dma-write-read-only-ref", HEAD + "pin p buf -> r\ndma_write r\n", 4, 11, "cannot write through it", "'write' flag"),
    ("partial-unpin", HEAD + "pin p buf -> r\nunpin r[0]\n", 4, 7, "drops the whole reference", "unpin r"),
    ("mmap-zero-pages", "spawn -> p\nmmap p 0 -> z\n", 2, 8, "mmap of 0 pages", "between 1 and"),
    ("too-many-children", "spawn -> p\nfork_children p 9000\n", 2, 17, "fork_children of 9,000", "between 1 and 8,192"),
    ("too-many-pages", "spawn -> p\nmmap p 65536 -> b\nfork_children p 4096\n", 3, 1,
     "exceed 1,048,576 pages mapped", "scenario limits"),
    ("mapping-too-large", "spawn -> p\nmmap p 70000 -> b\n", 2, 8, "mmap of 70,000 pages", "at most 65,536 pages"),
    ("number-too-long", "spawn -> p\nmmap p 99999999999999999999 -> b\n", 2, 8, "is too large", "at most 19 digits"),
    ("number-for-name", HEAD + "write 3 buf\n", 3, 7, "expected a process name", None),
    ("unknown-class", HEAD + "expect x: lek\n", 3, 11, "unknown violation class 'lek'", "did you mean 'leak'"),
    ("ok-with-class", HEAD + "expect x: ok leak\n", 3, 11, "'ok' cannot be combined", None),
    ("unknown-metric", HEAD + "budget x: copies <= 1\n", 3, 11, "unknown metric 'copies'", "wp_copies"),
    ("two-expectations", HEAD + "expect x: ok\nexpect x: leak\n", 4, 8, "second expectation", "one 'expect' line"),
    ("two-titles", 'title "a"\ntitle "b"\n', 2, 7, "'title' given twice", "once"),
    ("syntax-bad-character", "spawn -> p @\n", 1, 12, "unexpected character '@'", "one statement per line"),
    ("syntax-unclosed-bracket", HEAD + "write p buf[\n", 3, 13, "unexpected end of line", "[i] or [i:j]"),
    ("syntax-unclosed-string", 'title "abc\n', 1, 7, "unexpected character '\"'", "double quotes"),
    ("syntax-double-arrow", "spawn -> p -> q\n", 1, 12, "unexpected '->'", "one '-> NAME'"),
    ("syntax-expect-colon", "expect a b\n", 1, 10, "expected ':'", "expect POLICY [on VARIANT...]: CLASS"),
    ("syntax-bound", HEAD + "budget x: wp_copies 3\n", 3, 21, "unexpected '3'", "METRIC <= NUMBER"),
    ("syntax-bounds-without-comma", HEAD + "budget x: wp_copies <= 1 fork_copies == 0\n", 3, 26,
     "unexpected 'fork_copies'; expected end of line", "METRIC <= NUMBER"),
    ("syntax-title-unquoted", "title abc\n", 1, 7, "expected a quoted string", "double quotes"),
    ("syntax-number-for-operation", "3 p\n", 1, 1, "unexpected '3'", "one statement per line"),
    ("syntax-slice-unclosed", HEAD + "write p buf[1:2\n", 3, 16, "unexpected end of line; expected ']'", "[i] or [i:j]"),
    ("syntax-on-without-variant", "expect x on: ok\n", 1, 12, "unexpected ':'; expected a name", "expect POLICY [on"),
]


@pytest.mark.parametrize("text,line,col,msg,hint", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_error_position_message_and_hint(text, line, col, msg, hint):
    with pytest.raises(ScenarioError) as info:
        session("anon_exclusive").parse(text, "bad.scn")
    err = info.value
    assert (err.span.filename, err.span.line, err.span.column) == ("bad.scn", line, col), err.render()
    assert msg in err.message, err.render()
    assert err.hint, "every error carries a hint"
    if hint:
        assert hint in err.hint, err.render()


VHEAD = "variants base\nspawn -> p\nmmap_variant p -> buf\n"

VARIANT_CASES = [
    ("mmap-variant-without-variants", "spawn -> p\nmmap_variant p -> buf\n", 2, 1, "without variants", "variants base"),
    ("on-without-variants", HEAD + "expect x on base: ok\n", 3, 13, "without variants", "'variants' line"),
    ("variants-without-mmap-variant", "variants base\n" + HEAD, 1, 10, "without 'mmap_variant'", "mmap_variant PROCESS -> NAME"),
    ("variant-twice", "variants base base\nspawn -> p\nmmap_variant p -> buf\n", 1, 15, "listed twice", "once"),
    ("mmap-variant-arguments", "variants base\nspawn -> p\nmmap_variant p 3 -> buf\n", 3, 1, "takes a process", "usage"),
    ("on-unknown-variant", VHEAD + "expect x on bsae: ok\n", 4, 13, "not one of this scenario's variants", "did you mean 'base'"),
    ("two-expectations-on-a-variant", VHEAD + "expect x on base: ok\nexpect x on base: leak\n", 5, 8,
     "second expectation for policy 'x' on base (the first is at line 4)", "one 'expect' line"),
    ("variant-steps-name-clash", VHEAD.replace("-> buf", "-> p"), 3, 1, "'p' is already a process", "once"),
]


@pytest.mark.parametrize("text,line,col,msg,hint", [c[1:] for c in VARIANT_CASES], ids=[c[0] for c in VARIANT_CASES])
def test_variant_errors_have_position_message_and_hint(text, line, col, msg, hint):
    with pytest.raises(ScenarioError) as info:
        session("anon_exclusive").parse(text, "bad.scn", variant="base")
    err = info.value
    assert (err.span.filename, err.span.line, err.span.column) == ("bad.scn", line, col), err.render()
    assert msg in err.message, err.render()
    assert hint in err.hint, err.render()


def test_render_shows_the_line_and_a_caret_under_the_span():
    with pytest.raises(ScenarioError) as info:
        session("anon_exclusive").parse(HEAD + "write chld buf\n", "bad.scn")
    lines = info.value.render().splitlines()
    assert lines[0] == "bad.scn:3:7: error[PK251]: unknown process 'chld'"
    assert lines[1] == "   3 | write chld buf"
    assert lines[2] == "     |       ^^^^"
    assert lines[3].startswith("hint: ")


def test_comments_blank_lines_and_headers_are_accepted():
    scn = session("anon_exclusive").parse(
        '# a comment\n\nscenario x   # trailing\ntitle "t \\"q\\""\ntags a b\nsource "s"\n\n'
        + HEAD + "expect py-anon-exclusive: ok\nbudget py-anon-exclusive: wp_copies <= 1, fork_copies == 0\n",
        "ok.scn")
    assert (scn.name, scn.title, scn.tags, scn.source) == ("x", 't "q"', frozenset({"a", "b"}), "s")
    assert [s.op for s in scn.steps] == ["spawn", "mmap"]
    assert scn.expectations["py-anon-exclusive"].classes == frozenset()
    assert [str(b) for b in scn.budgets["py-anon-exclusive"]] == ["wp_copies <= 1", "fork_copies == 0"]


def test_name_defaults_to_the_file_stem():
    assert session("anon_exclusive").parse(HEAD, "dir/my-case.scn").name == "my-case"


def test_every_error_of_a_file_is_reported_without_cascades():
    from policykit.scenario.check import MAX_ERRORS, ScenarioErrors

    text = ("scenario s\nspawn -> p\nmmap p 1 private -> buf\nwrite q buf\nfork p -> c\nread c bof\n"
            "wrte p buf\nfork q -> d\nwrite d buf\nexpect linux-5.9: lek\n")
    with pytest.raises(ScenarioErrors) as exc:
        session("anon_exclusive").parse(text, "bad.scn")
    got = [(e.span.line, e.message) for e in exc.value.errors]
    assert got == [(4, "unknown process 'q'"), (6, "unknown region 'bof'"), (7, "unknown operation 'wrte'"),
                   (8, "unknown process 'q'"), (10, "unknown violation class 'lek'")]   # not 'd' at line 9
    rendered = exc.value.render()
    assert rendered.count("error[PK251]") == 5 and "did you mean 'leak'?" in rendered
    many = "scenario s\nspawn -> p\n" + "wrte p\n" * (MAX_ERRORS + 5)
    with pytest.raises(ScenarioErrors) as exc:
        session("anon_exclusive").parse(many, "bad.scn")
    assert len(exc.value.errors) == MAX_ERRORS and "stopped after 20 errors" in exc.value.render()
