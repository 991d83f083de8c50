"""Hypothesis fuzz tests. Examples per test: EA_FUZZ_EXAMPLES (default 40, kept small so that
`make test-fast` stays quick); a long run: `EA_FUZZ_EXAMPLES=2000 pytest tests/fuzz -m "not slow"`.
Tests that load files into a warehouse run a sixth as many; their `slow` variants run 8x.
"""

import os
import signal
from contextlib import contextmanager

EXAMPLES = int(os.environ.get("EA_FUZZ_EXAMPLES", "40"))
LOADS = max(EXAMPLES // 6, 5)  # examples for tests that load files into a warehouse


@contextmanager
def bounded(seconds: float, what: str):
    """Fail with TimeoutError when the block runs longer than `seconds`: a hang is a failure."""

    def _raise(*_):
        raise TimeoutError(f"{what} did not finish within {seconds} s")

    old = signal.signal(signal.SIGALRM, _raise)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
