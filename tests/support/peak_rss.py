"""Run a command and read its own peak RSS, for the tests that bound memory.

A child started straight from a (large) test process would inherit that process's peak RSS across
exec, so the command runs under a small wrapper process whose RUSAGE_CHILDREN is the command's alone.
"""
from __future__ import annotations

import subprocess
import sys
from typing import Any

_WRAPPER = ("import resource, subprocess, sys; done = subprocess.run(sys.argv[1:]); "
            "sys.stderr.write(f'PEAK={resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}\\n'); "
            "sys.exit(done.returncode)")


def run_measured(args: list[str], **options: Any) -> tuple[subprocess.CompletedProcess[str], int]:
    """subprocess.run(args, capture_output=True, text=True, **options) under the wrapper; returns the
    finished process and the command's peak RSS in KiB."""
    done = subprocess.run([sys.executable, "-c", _WRAPPER, *args], capture_output=True, text=True, **options)
    return done, int(done.stderr.rsplit("PEAK=", 1)[1])
