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
    assert "\033[32m50 passed\033[0m" in capsys.readouterr().out
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
