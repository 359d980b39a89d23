"""Tables that fit the terminal, colour only where it is wanted."""

from __future__ import annotations

from policykit import terminal
from policykit.cli import ExitCode, main


def test_a_wide_table_is_wrapped_to_the_width_and_a_pipe_gets_it_whole(monkeypatch):
    rows = [["a" * 10, "word " * 40, "b"], ["c", "d", "e"]]
    monkeypatch.delenv("COLUMNS", raising=False)
    whole = terminal.table(rows, ["x", "long", "y"])
    assert max(map(len, whole.splitlines())) > 150             # stdout is not a terminal here
    fitted = terminal.table(rows, ["x", "long", "y"], fit=60)
    assert max(map(len, fitted.splitlines())) <= 60
    assert " ".join(fitted.split()).count("word") == 40          # wrapped, nothing lost
    assert terminal.table(rows, ["x", "long", "y"], tablefmt="github", fit=60) == \
        terminal.table(rows, ["x", "long", "y"], tablefmt="github")


def test_plugins_fits_columns(monkeypatch, capsys):
    monkeypatch.setenv("COLUMNS", "100")
    assert main(["plugins"]) == ExitCode.OK
    assert max(map(len, capsys.readouterr().out.splitlines())) <= 100


def test_colour_follows_the_option_and_no_color(monkeypatch, capsys):
    scn = "policykit/corpus/cow-basic.scn"
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert main(["run", "linux-5.9", scn, "--color", "always"]) == ExitCode.OK
    assert "\033[32m54 passed\033[0m" in capsys.readouterr().out
    assert main(["run", "linux-5.9", scn]) == ExitCode.OK          # auto, and not a terminal
    assert "\033[" not in capsys.readouterr().out
    monkeypatch.setenv("NO_COLOR", "1")
    terminal.use_color("auto")

    class Tty:
        def isatty(self):
            return True
    assert not terminal.color_on(Tty())
    monkeypatch.delenv("NO_COLOR")
    assert terminal.color_on(Tty())
    terminal.use_color("never")
    assert not terminal.color_on(Tty())
    terminal.use_color("auto")


def test_tables_look_as_tabulate_makes_them(monkeypatch):
    """``table`` tells tabulate which columns are text, to spare it reading every cell as
    a number: numbers, numeric strings, thousands separators, hex, empty cells, colour
    codes around a number and text still come out exactly as tabulate lays them out."""
    from tabulate import tabulate

    monkeypatch.delenv("COLUMNS", raising=False)
    rows = [["ok (3)", 12, "7", "1,024", "0x1f", "", "\x1b[31m42\x1b[0m", "3.5", "True"],
            ["leak (0)", 3, "15", "2,048", "0x2", "x", "\x1b[31m7\x1b[0m", "nan", "False"],
            ["pin-incoherent lost-write (512)", 100, "3", "12", "0o7", "", "\x1b[31m1\x1b[0m", "1e3", "True"]]
    headers = ["verdict", "n", "s", "k", "hex", "sparse", "coloured", "float", "bool"]
    for fmt in ("simple", "github", "plain"):
        assert terminal.table(rows, headers, tablefmt=fmt) == tabulate(rows, headers, tablefmt=fmt)
    # words, and "True"/"False" (a bool to tabulate, whether it reads numbers or not)
    assert terminal._text_columns(rows) == [0, 5, 8]
