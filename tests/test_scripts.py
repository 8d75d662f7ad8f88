"""scripts/up runs pip only when the install is out of date (pyproject.toml, extras or the venv's Python
changed), tested on a copy of the scripts with a fake .venv whose "python" records what it is asked."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

FAKE_PYTHON = """#!/usr/bin/env bash
# records each call; answers the version question with $FAKE_PYTHON_VERSION
echo "$*" >> "$(dirname "$0")/../../calls.log"
if [ "$1" = "-c" ]; then echo "${FAKE_PYTHON_VERSION:-3.11.2 (fake)}"; fi
exit 0
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    if shutil.which("bash") is None:
        pytest.skip("needs bash")
    (tmp_path / "scripts").mkdir()
    for name in ("up", "bootstrap.sh"):
        shutil.copy2(ROOT / "scripts" / name, tmp_path / "scripts" / name)
    shutil.copy2(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    bin_dir = tmp_path / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    for name, text in (("python", FAKE_PYTHON), ("smartlock", "#!/usr/bin/env bash\necho up \"$@\"\n")):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    return tmp_path


def run_up(project: Path, **env: str) -> tuple[str, list[str]]:
    """scripts/up's install step; its output and the pip calls it made."""
    log = project / "calls.log"
    log.unlink(missing_ok=True)
    result = subprocess.run(
        ["bash", str(project / "scripts" / "up")], capture_output=True, text=True, timeout=60,
        env={**os.environ, "SMARTLOCK_UP_INSTALL_ONLY": "1", **env},
    )
    assert result.returncode == 0, result.stderr
    calls = log.read_text().splitlines() if log.exists() else []
    return result.stdout, [call for call in calls if call.startswith("-m pip install")]


def test_pip_runs_only_when_the_dependencies_or_python_changed(project: Path) -> None:
    out, pip = run_up(project)
    assert len(pip) == 2 and pip[-1].endswith("-e .")  # first start: pip itself, then the project
    assert (project / ".venv" / ".smartlock-install").is_file()

    out, pip = run_up(project)
    assert pip == [] and "no pip run" in out  # unchanged: no pip, no warnings

    with (project / "pyproject.toml").open("a") as handle:
        handle.write('\n# a new dependency\n')
    out, pip = run_up(project)
    assert len(pip) == 2
    assert run_up(project)[1] == []

    assert len(run_up(project, FAKE_PYTHON_VERSION="3.12.1 (fake)")[1]) == 2  # a new Python in the venv
    assert run_up(project, FAKE_PYTHON_VERSION="3.12.1 (fake)")[1] == []
    extras = run_up(project, FAKE_PYTHON_VERSION="3.12.1 (fake)", SMARTLOCK_EXTRAS="mqtt")[1]
    assert extras[-1].endswith("-e .[mqtt]")
    assert len(run_up(project, FAKE_PYTHON_VERSION="3.12.1 (fake)", SMARTLOCK_REINSTALL="1")[1]) == 2


def test_a_missing_entry_point_or_stamp_reinstalls(project: Path) -> None:
    run_up(project)
    (project / ".venv" / "bin" / "smartlock").unlink()
    assert len(run_up(project)[1]) == 2
    (project / ".venv" / ".smartlock-install").unlink()
    assert len(run_up(project)[1]) == 2
