"""The funnel part of the content service's wiring: the funnel and purchase-fact stores,
their use cases, and the order events that feed them."""
from __future__ import annotations

from siyu_kit.events.consumer import Subscription

from services.content.adapters import funnel_store
from services.content.application.cohorts import CohortUseCases
from services.content.application.contents import ContentUseCases
from services.content.application.funnels import FunnelUseCases
from services.content.application.personas import PersonaUseCases
from services.content.entrypoint import events


def use_cases(personas: PersonaUseCases, contents: ContentUseCases) -> tuple[FunnelUseCases, CohortUseCases]:
    funnel_store.ensure_indexes()
    return (FunnelUseCases(funnel_store.FunnelRepository(), personas, contents),
            CohortUseCases(funnel_store.PurchaseRepository()))


def subscriptions(funnels: FunnelUseCases, cohorts: CohortUseCases) -> list[Subscription]:
    return events.subscriptions(funnels, cohorts)
