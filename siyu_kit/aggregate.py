"""What every aggregate shares: one state-machine helper, the events a change records,
and the compare-and-set conflict its repository reports.

An aggregate is a domain object that owns its state: its methods check the rule, make the
move and record the domain events the move causes. Its repository's `save` writes the
change and those events (as outbox entries) in one conditional update on the version
that was read, so a change and its events are stored together or not at all."""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any, Generic, Hashable, Iterable, Mapping, TypeVar

from siyu_kit.errors import FailedPrecondition

S = TypeVar("S", bound=Hashable)


class Move(str, Enum):
    """What asking for a target state means in the state the aggregate is in."""
    APPLY = "APPLY"
    REPEAT = "REPEAT"  # already there: nothing changes, the request is answered as done
    REFUSE = "REFUSE"  # not reachable from here


class StateMachine(Generic[S]):
    """The allowed moves between an aggregate's states, declared once."""

    def __init__(self, noun: str, moves: Mapping[S, Iterable[S]], *, refused_reason: str):
        self.noun = noun
        self.moves: dict[S, frozenset[S]] = {source: frozenset(targets) for source, targets in moves.items()}
        self.refused_reason = refused_reason
        unknown = {t for targets in self.moves.values() for t in targets} - set(self.moves)
        if unknown:
            raise ValueError(f"{noun}: targets {unknown} are not states of the machine")

    def can(self, source: S, target: S) -> bool:
        return target in self.moves[source]

    def decide(self, source: S, target: S) -> Move:
        if source == target:
            return Move.REPEAT
        return Move.APPLY if self.can(source, target) else Move.REFUSE

    def require(self, source: S, target: S, *, reason: str = "", message: str = "") -> None:
        """Raises FailedPrecondition unless `target` is reachable from `source`."""
        if not self.can(source, target):
            raise FailedPrecondition(message or f"a {self.noun} in state {_name(source)} cannot become {_name(target)}",
                                     reason=reason or self.refused_reason)

    def is_final(self, state: S) -> bool:
        return not self.moves[state]


def _name(state: Any) -> str:
    return getattr(state, "value", state)


class Aggregate:
    """Mixin for an aggregate root: `version` is the version it was read at; the domain
    events its methods record wait in `pending_events` until the repository saves them.

    Subclasses are dataclasses with `id`, `merchant_id` and `version` fields."""

    id: str
    merchant_id: str
    version: int

    @property
    def pending_events(self) -> list[Any]:
        try:
            return self.__dict__["_pending_events"]
        except KeyError:
            self.__dict__["_pending_events"] = events = []
            return events

    def record(self, event: Any) -> None:
        """Keep a domain event caused by a change of this aggregate, to be saved with it."""
        self.pending_events.append(event)

    def pull_events(self) -> list[Any]:
        """The recorded events, handed over once (the repository calls this when saving)."""
        events = list(self.pending_events)
        self.pending_events.clear()
        return events

    @property
    def next_version(self) -> int:
        """The version a save of the current change writes (and its events carry)."""
        return self.version + 1


class StaleVersion(Exception):
    """A compare-and-set write lost: another writer changed the aggregate since it was
    read. Read it again and decide again (siyu_kit.retry.on_conflict)."""


@dataclass(frozen=True)
class Saved:
    """What a repository's save reports: the version now stored."""
    version: int
