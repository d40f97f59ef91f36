"""`--profile`: where each process of the suite spends its CPU during one scenario, per
function and per area (our layers, the libraries), from yappi's CPU clock in every thread.

Before a scenario the bench sends SIGUSR1 to every armed process (siyu_kit.profiling),
after it SIGUSR2; each writes its pstats file, which lands in
var/bench/profile/<scenario>/. The summary is printed and written to
var/bench/profile_<scenario>.json. yappi slows what it measures (about twice), so a
profiled run's rates are not the bench's: read the shares, not the seconds.
"""
from __future__ import annotations

import json
import os
import pstats
import re
import shutil
import signal
import sys
import sysconfig
import time
from collections import defaultdict
from pathlib import Path

from siyu_kit.config import SERVICE_NAMES
from siyu_kit.devstack import ROOT, Stack

# The processes that arm the profiler's signals: any other would die of SIGUSR1.
PROFILED = ("mongo", *SERVICE_NAMES, "gateway")
TOP_FUNCTIONS = 12
TOP_AREAS = 10
WRITE_TIMEOUT_S = 60.0
_STDLIB = sysconfig.get_paths()["stdlib"]
_SITE = re.compile(r".*/site-packages/")


def profiled_pids(stack: Stack) -> list[int]:
    """The armed processes, and the gateway's worker processes when it runs several."""
    pids = [stack.procs[n].pid for n in PROFILED if n in stack.procs and stack.procs[n].poll() is None]
    gateway = stack.procs.get("gateway")
    if gateway is not None:
        pids += [pid for pid in _children(gateway.pid) if b"spawn_main" in _cmdline(pid)]
    return pids


def _children(parent: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == parent:
                found.append(int(entry))
    return found


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def start(stack: Stack) -> list[int]:
    pids = profiled_pids(stack)
    for pid in pids:
        os.kill(pid, signal.SIGUSR1)
    return pids


def stop(pids: list[int], profile_dir: Path, scenario: str) -> Path:
    """Asks every process for its file and moves them into the scenario's folder."""
    for pid in pids:
        os.kill(pid, signal.SIGUSR2)
    into = profile_dir / scenario
    shutil.rmtree(into, ignore_errors=True)
    into.mkdir(parents=True)
    waiting = set(pids)
    deadline = time.monotonic() + WRITE_TIMEOUT_S
    while waiting and time.monotonic() < deadline:
        for path in profile_dir.glob("*.pstats"):
            pid = int(path.stem.rsplit("-", 1)[1])
            if pid in waiting:
                path.rename(into / path.name)
                waiting.discard(pid)
        time.sleep(0.2)
    if waiting:
        print(f"profile: no file from pids {sorted(waiting)} within {WRITE_TIMEOUT_S:.0f}s", file=sys.stderr)
    return into


_C_METHOD = re.compile(r"of '([A-Za-z_][\w]*)\.")


def area(filename: str, function: str = "") -> str:
    """Which part of the code a function belongs to: a layer of ours, a library, the
    standard library's module, or a C module (named without its leading underscore)."""
    path = filename.replace("\\", "/")
    if "/" not in path:  # a C function: its module, or the module of the type it is a method of
        owner = _C_METHOD.search(function)
        module = owner.group(1) if path == "__builtin__" and owner else path
        return "C " + ("builtins" if module == "__builtin__" else module.lstrip("_"))
    if "/site-packages/" in path:
        top = _SITE.sub("", path).split("/")[0]
        return top.removesuffix(".py").split(".")[0]
    root = str(ROOT) + "/"
    if path.startswith(root):
        parts = path[len(root):].split("/")
        if parts[0] == "services" and len(parts) > 2:
            return f"{parts[1]}/{parts[2]}"  # e.g. order/application
        if parts[0] == "gen":
            return "generated protos"
        return parts[0]
    if path.startswith(_STDLIB):
        return "stdlib " + path[len(_STDLIB):].lstrip("/").split("/")[0].removesuffix(".py")
    return "other"


def _short(func: tuple[str, int, str]) -> str:
    filename, line, name = func
    if "/" not in filename:
        return f"{area(filename, name)}: {name}"
    path = _SITE.sub("", filename)
    path = path.removeprefix(str(ROOT) + "/").removeprefix(_STDLIB + "/")
    return f"{path}:{line} {name}"


def summarize(folder: Path) -> dict:
    """Per process (the files of one name merged): total CPU, its areas, its functions."""
    by_name: dict[str, list[Path]] = defaultdict(list)
    for path in sorted(folder.glob("*.pstats")):
        by_name[path.stem.rsplit("-", 1)[0]].append(path)
    processes = {}
    for name, files in by_name.items():
        stats = pstats.Stats(*map(str, files))
        own = {func: row[2] for func, row in stats.stats.items()}  # row: cc, nc, tottime, cumtime, callers
        total = sum(own.values())
        if total <= 0:
            continue
        areas: dict[str, float] = defaultdict(float)
        for func, seconds in own.items():
            areas[area(func[0], func[2])] += seconds
        processes[name] = {
            "cpu_s": round(total, 2),
            "areas": [{"area": a, "cpu_s": round(s, 2), "share": round(s / total, 3)}
                      for a, s in sorted(areas.items(), key=lambda kv: -kv[1])[:TOP_AREAS]],
            "functions": [{"function": _short(f), "cpu_s": round(s, 2), "share": round(s / total, 3)}
                          for f, s in sorted(own.items(), key=lambda kv: -kv[1])[:TOP_FUNCTIONS]],
        }
    all_cpu = sum(p["cpu_s"] for p in processes.values()) or 1.0
    for p in processes.values():
        p["share_of_suite"] = round(p["cpu_s"] / all_cpu, 3)
    return dict(sorted(processes.items(), key=lambda kv: -kv[1]["cpu_s"]))


def render(scenario: str, processes: dict) -> str:
    lines = [f"\nprofile of {scenario} (yappi, CPU clock, every thread; shares, not rates):"]
    for name, p in processes.items():
        lines.append(f"  {name}: {p['cpu_s']:.1f} CPU-s, {100 * p['share_of_suite']:.0f}% of the suite")
        lines.append("    areas: " + ", ".join(f"{a['area']} {100 * a['share']:.0f}%" for a in p["areas"]))
        for f in p["functions"]:
            lines.append(f"    {100 * f['share']:5.1f}%  {f['function']}")
    return "\n".join(lines)


def write(out_dir: Path, scenario: str, processes: dict) -> Path:
    path = out_dir / f"profile_{scenario}.json"
    path.write_text(json.dumps({"scenario": scenario, "processes": processes}, ensure_ascii=False, indent=2) + "\n")
    return path
