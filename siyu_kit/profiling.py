"""CPU profile of one process, per function, for `make bench ARGS="--profile …"`.

Off unless SIYU_CPU_PROFILE_DIR is set (only the bench sets it; yappi is a development
package and is never imported otherwise). With it set, a process arms two signals:

- SIGUSR1 starts counting the CPU time of every thread, per function, C functions
  included (yappi, CPU clock: pymongo's calls run in worker threads, which a one-thread
  profiler would not see, and without C functions their time would not be counted at all);
- SIGUSR2 stops and writes `<dir>/<name>-<pid>.pstats` (readable by `pstats`), then clears.

So the bench profiles exactly the window of one scenario, not start-up or seeding.
`python -m siyu_kit.profiling <console script> [args…]` runs an installed program (the
embedded MongoDB server) with the same two signals.
"""
from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

ENV = "SIYU_CPU_PROFILE_DIR"


def enabled() -> bool:
    return bool(os.environ.get(ENV))


def arm(name: str) -> None:
    """Arms SIGUSR1/SIGUSR2 for this process when profiling is on; otherwise nothing."""
    if not enabled():
        return
    import yappi

    out = Path(os.environ[ENV])
    out.mkdir(parents=True, exist_ok=True)
    yappi.set_clock_type("cpu")

    def start(_signum, _frame) -> None:
        if not yappi.is_running():
            yappi.clear_stats()
            yappi.start(builtins=True, profile_threads=True)  # C calls too (sqlite, bson, json)

    def stop(_signum, _frame) -> None:
        if not yappi.is_running():
            return
        yappi.stop()
        path = out / f"{name}-{os.getpid()}.pstats"
        tmp = path.with_suffix(".tmp")
        yappi.get_func_stats().save(str(tmp), type="pstat")
        tmp.rename(path)  # whole or absent: the bench waits for the file
        yappi.clear_stats()

    signal.signal(signal.SIGUSR1, start)
    signal.signal(signal.SIGUSR2, stop)


def _run_console_script(argv: list[str]) -> int:
    from importlib.metadata import entry_points

    script, args = argv[0], argv[1:]
    (entry,) = entry_points(group="console_scripts", name=script)
    arm(script)
    sys.argv = [script, *args]
    return entry.load()() or 0


if __name__ == "__main__":
    sys.exit(_run_console_script(sys.argv[1:]))
