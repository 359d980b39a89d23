"""A third-party plugin, built from docs/plugins.md in a temp dir and installed into a
temporary virtualenv that sees the suite's packages (the venv the suite runs in is left as
it is), with its own pyproject and entry point: its operation, attribute and decision point
are usable from scenarios and .pol files, and its own tests pass."""

from __future__ import annotations

import os
import re
import site
import subprocess
import sys

import pytest
from conftest import ROOT

GUIDE = ROOT / "docs" / "plugins.md"


def files_of_guide() -> dict[str, str]:
    """The ``file=NAME`` blocks of the guide."""
    out, name, lines = {}, None, []
    for line in GUIDE.read_text().splitlines():
        m = re.match(r"```\w+ file=(\S+)$", line)
        if m:
            name, lines = m.group(1), []
        elif line.startswith("```") and name:
            out[name] = "\n".join(lines) + "\n"
            name = None
        elif name:
            lines.append(line)
    return out


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    root = tmp_path_factory.mktemp("policykit-migrate")
    for name, text in files_of_guide().items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    venv = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    venv_site = subprocess.run([python, "-c", "import site; print(site.getsitepackages()[0])"],
                               capture_output=True, text=True, check=True).stdout.strip()
    # the temporary venv sees the suite's packages (policykit, its plugins, pytest), .pth
    # files included, beneath its own
    with open(os.path.join(venv_site, "suite.pth"), "w") as f:
        f.writelines(f"import site; site.addsitedir({d!r})\n" for d in site.getsitepackages())
    pip = [sys.executable, "-m", "pip", "--python", python, "install", "-q", "--no-deps", str(root)]
    done = subprocess.run(pip, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    env = {k: v for k, v in os.environ.items() if k != "POLICYKIT_DISABLE_PLUGIN_AUTOLOAD"}
    yield root, env, python


def policykit(python, args, env):
    return subprocess.run([python, "-m", "policykit", *args], capture_output=True, text=True, env=env)


def test_listed_with_what_it_adds(installed):
    root, env, python = installed
    out = policykit(python, ["plugins"], env)
    assert out.returncode == 0, out.stderr
    assert "policykit-migrate" in out.stdout and "decision points: migrate_page" in out.stdout


def test_its_decision_point_is_usable_from_a_policy_file(installed):
    root, env, python = installed
    checked = policykit(python, ["check", str(root / "migrate-all.pol")], env)
    assert checked.returncode == 0, checked.stderr
    ran = policykit(python, ["run", str(root / "migrate-all.pol"), str(root / "migrate-pinned.scn")], env)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "pin-incoherent" in ran.stdout
    compiled = policykit(python, ["compile", str(root / "migrate-all.pol")], env)
    assert "def policykit_migrate_page(ctx):" in compiled.stdout


def test_without_the_plugin_the_policy_is_refused(installed):
    root, env, python = installed
    off = dict(env, POLICYKIT_DISABLE_PLUGIN_AUTOLOAD="1")
    checked = policykit(python, ["check", str(root / "migrate-all.pol")], off)
    assert checked.returncode == 2
    assert "unknown decision point 'migrate_page'" in checked.stderr


def test_its_own_tests_pass(installed):
    root, env, python = installed
    done = subprocess.run([python, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(root / "tests")],
                          capture_output=True, text=True, env=env, cwd=root)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 passed" in done.stdout
