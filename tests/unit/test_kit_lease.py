"""The lease rules (siyu_kit/lease.py) over the in-memory store: one holder at a time,
a token that grows with each new holder, a holder that cannot renew stops before anyone
else may take over, and a dead holder is replaced once its lease expires."""
from __future__ import annotations

import asyncio

from hypothesis import given, settings, strategies as st

from siyu_kit import lease as leases
from siyu_kit.lease import Lease
from siyu_kit.service import Job, _every
from tests.fakes.leases import FakeLeases

TTL = 9.0


class Clock:
    def __init__(self):
        self.t = 1_000.0

    def at(self, skew: float = 0.0):
        """A replica's wall clock (ms), off by `skew` seconds, and its monotonic clock."""
        return (lambda: int((self.t + skew) * 1000)), (lambda: self.t)


async def _direct(fn, *args):
    return fn(*args)


def _now(coro):
    """Runs a coroutine that never waits (the fake store answers at once)."""
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value
    raise AssertionError("the step waited")


def _replica(store, clock, name="job", skew=0.0, holder=None):
    wall, mono = clock.at(skew)
    return Lease(store, name, holder or f"r{skew}", ttl=TTL, clock=wall, monotonic=mono, run=_direct)


def test_the_first_acquires_with_token_one_and_the_others_wait():
    store, clock = FakeLeases(), Clock()
    a, b = _replica(store, clock, holder="a"), _replica(store, clock, holder="b")
    assert _now(a.step()) and a.token == 1
    assert not _now(b.step()) and b.token is None
    for _ in range(10):  # renewed every TTL/3, for as long as it lives
        clock.t += a.retry_s
        assert _now(a.step()) and not _now(b.step())
    assert a.token == 1


def test_a_dead_holder_is_replaced_once_its_lease_expires_with_a_greater_token():
    store, clock = FakeLeases(), Clock()
    a, b = _replica(store, clock, holder="a"), _replica(store, clock, holder="b")
    assert _now(a.step())
    clock.t += TTL - 0.5
    assert not _now(b.step())
    clock.t += 0.5  # a never renewed: its lease has expired
    assert _now(b.step()) and b.token == 2


def test_a_holder_that_cannot_renew_stops_before_its_lease_expires():
    store, clock = FakeLeases(), Clock()
    a = _replica(store, clock, holder="a")
    assert _now(a.step())
    store.down = True
    clock.t += a.retry_s
    assert _now(a.step())  # the failed renewal leaves what is still valid
    clock.t += TTL - a.retry_s - a.margin
    assert not a.held() and not _now(a.step())
    assert store.docs["job"]["expires_ms"] > clock.at()[0]()  # stopped while the lease still ran


def test_a_holder_whose_renewal_came_late_keeps_its_token_when_nobody_took_over():
    store, clock = FakeLeases(), Clock()
    a, b = _replica(store, clock, holder="a"), _replica(store, clock, holder="b")
    assert _now(a.step())
    clock.t += TTL - a.margin  # a stalled loop: no renewal in time
    assert not a.held()
    assert _now(a.step()) and a.token == 1
    assert not _now(b.step())


def test_a_superseded_holder_learns_it_at_its_next_renewal():
    store, clock = FakeLeases(), Clock()
    a, b = _replica(store, clock, holder="a"), _replica(store, clock, holder="b")
    assert _now(a.step())
    store.docs["job"]["expires_ms"] = 0  # as if it had expired unseen
    assert _now(b.step()) and b.token == 2
    clock.t += a.retry_s
    assert not _now(a.step()) and a.token is None
    assert not store.renew("job", "a", 1, 0, 1)


def test_release_frees_the_lease_for_the_next_at_once():
    store, clock = FakeLeases(), Clock()
    a, b = _replica(store, clock, holder="a"), _replica(store, clock, holder="b")
    assert _now(a.step())
    _now(a.release())
    assert not a.held()
    assert _now(b.step()) and b.token == 2
    assert not store.release("job", "a", 1)  # a stale release changes nothing


def test_leases_of_different_jobs_are_independent():
    store, clock = FakeLeases(), Clock()
    assert _now(_replica(store, clock, "one", holder="a").step())
    assert _now(_replica(store, clock, "two", holder="b").step())


_steps = st.lists(st.one_of(
    st.tuples(st.just("step"), st.integers(0, 2)),
    st.tuples(st.just("wait"), st.floats(0.1, 6.0)),
    st.tuples(st.just("down"), st.booleans()),
    st.tuples(st.just("release"), st.integers(0, 2)),
), max_size=60)


@settings(max_examples=150, deadline=None)
@given(skews=st.lists(st.floats(-TTL / 10, TTL / 10), min_size=3, max_size=3), steps=_steps)
def test_at_most_one_replica_holds_at_any_moment_and_tokens_only_grow(skews, steps):
    """Three replicas whose clocks disagree by up to the lease's margin, stepping in any
    order while time passes and the database comes and goes."""
    store, clock = FakeLeases(), Clock()
    replicas = [_replica(store, clock, skew=s, holder=f"r{i}") for i, s in enumerate(skews)]
    tokens: list[int] = []
    for kind, arg in steps:
        if kind == "step":
            if _now(replicas[arg].step()) and (not tokens or tokens[-1] != replicas[arg].token):
                tokens.append(replicas[arg].token)
        elif kind == "wait":
            clock.t += arg
        elif kind == "down":
            store.down = arg
        else:
            if not store.down:
                _now(replicas[arg].release())
        assert sum(r.held() for r in replicas) <= 1
    assert tokens == sorted(set(tokens))


async def test_a_job_runs_only_in_the_replica_holding_its_lease_and_sees_its_token():
    store = FakeLeases()
    runs: dict[str, list[int | None]] = {"a": [], "b": []}

    def job(who: str) -> Job:
        async def run():
            runs[who].append(leases.fencing_token())
        return Job("tally", 0.01, run)

    def lease(who: str) -> Lease:
        return Lease(store, "tally", who, ttl=0.6, run=_direct)

    a = asyncio.create_task(_every("test", job("a"), lease("a")))
    await _until(lambda: runs["a"])
    b = asyncio.create_task(_every("test", job("b"), lease("b")))
    await _until(lambda: len(runs["a"]) >= 20)
    assert runs["b"] == [] and set(runs["a"]) == {1}
    a.cancel()  # a replica stops: it releases, and the other takes over
    await asyncio.gather(a, return_exceptions=True)
    await _until(lambda: runs["b"])
    b.cancel()
    await asyncio.gather(b, return_exceptions=True)
    assert set(runs["b"]) == {2}
    assert leases.fencing_token() is None  # only inside a run


async def _until(check, limit: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while not check():
        assert loop.time() < deadline, "not reached in time"
        await asyncio.sleep(0.01)
