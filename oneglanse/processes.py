"""Stopping child processes the way orchestrators do: SIGTERM (graceful), then SIGKILL."""
from __future__ import annotations

import signal
import subprocess
import time


def processes_stop(processes: list[subprocess.Popen], *, timeout: float) -> None:
    """SIGTERM every live process at once, then SIGKILL whatever is still running after `timeout` s."""
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for process in processes:
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
