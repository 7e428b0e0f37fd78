"""Helpers shared by the benchmark scripts: peak RSS, the shared data folder, running a case in a subprocess."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
from pathlib import Path

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MB (Linux reports kB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_case(script: str, *args: str) -> dict:
    """Run ``script --case args...`` in a fresh Python so each case's peak RSS is its own."""
    out = subprocess.run([sys.executable, script, "--case", *args], capture_output=True, text=True, check=False)
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
    if out.returncode != 0 or not lines:
        raise RuntimeError(f"case {args} failed:\n{out.stderr[-2000:]}")
    return json.loads(lines[-1])
