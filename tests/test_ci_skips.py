"""Under CI a skip is a failure unless allow-listed: a green run means every test ran."""
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run(tmp_path, ci: str | None):
    (tmp_path / "conftest.py").write_text("from tests.conftest import pytest_runtest_makereport  # noqa: F401\n")
    (tmp_path / "test_probe.py").write_text("import pytest\n\n\ndef test_needs_a_tool():\n"
                                            "    pytest.skip('the tool is not installed')\n")
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    if ci is not None:
        env["CI"] = ci
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)


def test_a_skip_fails_the_run_under_ci(tmp_path):
    result = _run(tmp_path, "true")
    assert result.returncode == 1, result.stdout
    assert "skipped under CI=true" in result.stdout and "the tool is not installed" in result.stdout


def test_outside_ci_a_skip_is_only_a_skip(tmp_path):
    result = _run(tmp_path, None)
    assert result.returncode == 0 and "1 skipped" in result.stdout, result.stdout
