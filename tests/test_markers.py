"""`-m "not integration"` leaves out every real-process test, and `-m integration` selects them all."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _collected(marker: str) -> list[str]:
    out = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                          "-m", marker, "tests"], cwd=ROOT, capture_output=True, text=True, timeout=120).stdout
    return [line for line in out.splitlines() if "::" in line]


# Real-process tests outside tests/integration: the compose stack on a real Docker engine.
ELSEWHERE = ("tests/deploy/test_compose_stack.py",)


def test_the_integration_marker_covers_exactly_the_integration_folder():
    unit = _collected("not integration")
    integration = _collected("integration")
    real = ("tests/integration/", *ELSEWHERE)
    assert unit and not any(node.startswith(real) for node in unit)
    assert integration and all(node.startswith(real) for node in integration)
    assert all(any(node.startswith(path) for node in integration) for path in ELSEWHERE)
