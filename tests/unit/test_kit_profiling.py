"""The bench's CPU profile: a process armed by siyu_kit.profiling counts between SIGUSR1 and
SIGUSR2 and writes a pstats file, which bench/profile.py sums up per process and area."""
import os
import signal
import time

import pytest

from bench import profile
from siyu_kit import profiling
from siyu_kit.devstack import ROOT


@pytest.fixture
def armed(tmp_path, monkeypatch):
    monkeypatch.setenv(profiling.ENV, str(tmp_path))
    kept = signal.getsignal(signal.SIGUSR1), signal.getsignal(signal.SIGUSR2)
    profiling.arm("unit")
    yield tmp_path
    signal.signal(signal.SIGUSR1, kept[0])
    signal.signal(signal.SIGUSR2, kept[1])


def busy_for(seconds: float) -> int:
    total, until = 0, time.process_time() + seconds
    while time.process_time() < until:
        total += sum(range(200))
    return total


def test_nothing_is_armed_without_the_setting(monkeypatch):
    monkeypatch.delenv(profiling.ENV, raising=False)
    before = signal.getsignal(signal.SIGUSR1)
    profiling.arm("unit")
    assert signal.getsignal(signal.SIGUSR1) is before


def test_the_window_between_the_signals_is_written_and_summed_per_function(armed):
    busy_for(0.05)  # before the window: not counted
    os.kill(os.getpid(), signal.SIGUSR1)
    busy_for(0.3)
    os.kill(os.getpid(), signal.SIGUSR2)
    (written,) = armed.glob("unit-*.pstats")
    into = armed / "scenario"
    into.mkdir()
    written.rename(into / written.name)

    processes = profile.summarize(into)

    unit = processes["unit"]
    assert 0.2 < unit["cpu_s"] < 2.0
    assert unit["share_of_suite"] == 1.0
    functions = {f["function"] for f in unit["functions"]}
    assert any(f.startswith("tests/unit/test_kit_profiling.py") and f.endswith("busy_for") for f in functions)
    assert "C builtins: sum" in functions
    assert {a["area"] for a in unit["areas"]} >= {"tests", "C builtins"}
    assert "profile of s" in profile.render("s", processes)


@pytest.mark.parametrize("filename, expected", [
    (f"{ROOT}/services/order/application/checkout.py", "order/application"),
    (f"{ROOT}/siyu_kit/db.py", "siyu_kit"),
    (f"{ROOT}/gen/siyu/order/v1/order_pb2.py", "generated protos"),
    ("/x/.venv/lib/python3.11/site-packages/pymongo/synchronous/pool.py", "pymongo"),
    ("/x/.venv/lib/python3.11/site-packages/six.py", "six"),
])
def test_each_function_is_counted_in_its_area(filename, expected):
    assert profile.area(filename) == expected


@pytest.mark.parametrize("module, function, expected", [
    ("__builtin__", "<method 'execute' of 'sqlite3.Connection' objects>", "C sqlite3"),
    ("__builtin__", "<method 'join' of 'str' objects>", "C builtins"),
    ("_json", "encode_basestring_ascii", "C json"),
    ("builtins", "isinstance", "C builtins"),
])
def test_c_functions_count_in_their_module(module, function, expected):
    assert profile.area(module, function) == expected
