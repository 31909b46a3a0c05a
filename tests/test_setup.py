"""The README's set-up commands are the ones CI runs: ``.ci/run`` installs and tests exactly as
the README's "Set up" section says, so the instructions a user follows are the ones tested."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _setup_commands() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Set up", 1)[1].split("\n## ", 1)[0]
    return [line.strip() for block in re.findall(r"```bash\n(.*?)```", section, re.S)
            for line in block.splitlines() if line.strip()]


def test_ci_runs_the_readmes_install_and_test_commands():
    commands = _setup_commands()
    install, test = commands[0], commands[1]
    assert install.startswith("pip install") and "torch==2.13.0" in install
    assert test == "python -m pytest -q"
    ci = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert install in ci, "README's install command is not .ci/run's"
    assert test in ci, "README's test command is not .ci/run's"


def test_torch_is_bounded_everywhere_it_is_required():
    """A bare or open-ended torch requirement pulls several GB of CUDA wheels."""
    pyproject = (ROOT / "pyproject.toml").read_text()
    for requirement in re.findall(r'"(torch[^"]*)"', pyproject):
        assert "<" in requirement or "==" in requirement, requirement


def test_every_file_the_package_reads_is_in_what_it_installs():
    """A non-editable install (a wheel) holds only the ``.py`` files and the package-data
    patterns: a shipped weight, recipe, page or table outside them would be missing there."""
    import fnmatch

    import pytest

    tomllib = pytest.importorskip("tomllib", reason="tomllib is Python 3.11's")
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["openfer"]
    package = ROOT / "src" / "openfer"
    data = [p.relative_to(package).as_posix() for p in package.rglob("*")
            if p.is_file() and p.suffix not in (".py", ".pyc") and "__pycache__" not in p.parts]
    assert data, "no data files found: the package layout changed"
    missing = [f for f in data if not any(fnmatch.fnmatch(f, g) for g in patterns)]
    assert not missing, f"not in [tool.setuptools.package-data]: {missing}"
    assert config["project"]["license-files"] == ["LICENSE"] and (ROOT / "LICENSE").is_file()
