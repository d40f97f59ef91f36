"""Settlement: the job that settles completed orders once their after-sales window closed,
the payment split written from order.settled, its reversal on a later refund, and the
execution of the split at the provider (profit sharing and its returns).

Three replicas run the same jobs: settling is one write conditional on the order's
version that also stores order.settled (the loser reads StaleVersion and moves on); the
split is keyed by its order (a second insert is a duplicate); reversals are keyed by the
refund inside the split's versioned document; share calls are keyed by the split id and
the return id at the provider, so a repeated call answers the first."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Callable

from siyu_kit import logging as slog
from siyu_kit.aggregate import StaleVersion
from siyu_kit.protos import epoch_ms, to_storage_precision, utcnow

from services.order.application.finance_ports import (LedgerDays, PaidTransactions, SettleCandidates, SplitPostings,
                                                      SplitRecords, SplitSettingsRepository, SupplierLinks,
                                                      SupplierRepository)
from services.order.application.ports import OpenRefunds, OrderRepository, SettingsRepository
from services.order.application.provider_ports import (ProfitSharing, ShareReceiver, ShareRequest,
                                                       ShareReturnRequest)
from services.order.domain import finance, ledger
from services.order.domain.orders import OrderState
from services.order.domain.settlement import SETTLE_BATCH, due_ms, is_due
from services.order.domain.split import (PLATFORM, RETURN_FAILED, RETURN_PROCESSING, RETURN_SUCCESS,
                                         SHARE_FINISHED, SHARE_PROCESSING, SUPPLIER, SettledOrder, SplitRecord,
                                         ledger_gross, shared_with)

log = slog.get("siyu.order.settlement")

# An order with a refund still open is looked at again this much later.
OPEN_REFUND_RETRY = timedelta(minutes=10)
WORK_BATCH = 50


def split_posting(record: SplitRecord) -> finance.Posting:
    shared = {p.party_id: shared_with(record.shares, SUPPLIER, p.party_id)
              for p in record.initial.parts if p.kind == SUPPLIER}
    return finance.Posting(posting_id=record.id, kind=finance.SPLIT, order_id=record.order_id,
                           day=finance.business_day(record.settled_at), figures=record.initial,
                           shared={k: v for k, v in shared.items() if v})


def reversal_postings(record: SplitRecord) -> list[finance.Posting]:
    return [finance.Posting(posting_id=f"{record.id}:{r.refund_id}", kind=finance.REVERSAL, order_id=record.order_id,
                            day=finance.business_day(r.at), figures=r.figures) for r in record.reversals]


@dataclass
class SettlementUseCases:
    orders: OrderRepository
    order_settings: SettingsRepository
    open_refunds: OpenRefunds
    candidates: SettleCandidates
    splits: SplitRecords
    postings: SplitPostings
    split_settings: SplitSettingsRepository
    suppliers: SupplierRepository
    links: SupplierLinks
    ledger: LedgerDays
    transactions: PaidTransactions
    sharing: ProfitSharing
    clock: Callable[[], datetime] = utcnow
    batch: int = SETTLE_BATCH

    def _now(self) -> datetime:
        return to_storage_precision(self.clock())

    # ---- the settle job --------------------------------------------------------------

    async def settle_due(self) -> int:
        """Settles the completed orders whose after-sales window closed (a bounded batch)."""
        now = self._now()
        scanned_ms = epoch_ms(now)
        settled = 0
        # Each merchant's window read fresh once per run: another replica's cached settings
        # must not postpone an order by a window the owner just shortened.
        windows: dict[str, int] = {}
        for order in await self.candidates.due(scanned_ms, self.batch):
            if order.merchant_id not in windows:
                windows[order.merchant_id] = (await self.order_settings.of_merchant(order.merchant_id,
                                                                                    True)).after_sales_days
            window = windows[order.merchant_id]

            async def postpone(until_ms: int) -> None:
                # Only while the order is as due as the scan saw it: a recheck since then wins.
                await self.candidates.postpone(order.merchant_id, order.id, until_ms, scanned_ms)

            if order.state is not OrderState.COMPLETED or order.settled_at is not None:
                await postpone(epoch_ms(now + timedelta(days=1)))
                continue
            if not is_due(order.completed_at, window, now):
                await postpone(due_ms(order.completed_at, window))
                continue
            if await self.open_refunds.count_open(order.merchant_id, order.id):
                # A refund being decided is part of the window: settle once it is resolved.
                await postpone(epoch_ms(now + OPEN_REFUND_RETRY))
                continue
            order.settle(now)
            try:
                await self.orders.save(order)
            except StaleVersion:
                continue  # another replica settled it, or the order changed: the next run looks again
            settled += 1
        return settled

    # ---- the split, from order.settled -----------------------------------------------

    async def write_split(self, order: SettledOrder, settled_at: datetime) -> SplitRecord:
        """Writes the order's split once (a replayed event finds it and only re-posts it)."""
        settings = await self.split_settings.of_merchant(order.merchant_id)
        terms = await self.links.terms(order.merchant_id, [line.sku_id for line in order.lines])
        suppliers = await self.suppliers.among(order.merchant_id, sorted({t.supplier_id for t in terms.values()}))
        accounts = {sid: s.provider_account for sid, s in suppliers.items() if s.provider_account}
        balances = await self.ledger.order_balances(order.merchant_id, order.order_id)
        record = SplitRecord.write(order, terms, settings, accounts,
                                   ledger_gross(balances, ledger.order_account(order.order_id)), settled_at)
        # The insert is the check: a replayed event finds the split written the first time.
        existing = record if await self.splits.add(record) else await self.splits.get(order.merchant_id,
                                                                                        order.order_id)
        if existing is record and not record.ledger_matches:
            log.warning("split_ledger_mismatch", order_id=order.order_id, gross=record.initial.gross)
        assert existing is not None
        await self.postings.add(existing.merchant_id, split_posting(existing))
        return existing

    # ---- a refund after the split ------------------------------------------------------

    async def reverse(self, refund_id: str, order: SettledOrder, settled: bool, at: datetime) -> bool:
        """Reverses a refund of a settled order. False when there is nothing to reverse (the
        order is not settled: its split will take the refund as it stands). Raises
        LookupError while the order is settled but its split is not written yet (retried)."""
        if not settled:
            return False
        for _ in range(3):
            record = await self.splits.get(order.merchant_id, order.order_id)
            if record is None:
                raise LookupError(f"the split of {order.order_id} is not written yet")
            if record.reverse(refund_id, order, at) is None:
                changed = False
            else:
                try:
                    await self.splits.save(record)
                except StaleVersion:
                    continue
                changed = True
            for posting in reversal_postings(record):
                await self.postings.add(record.merchant_id, posting)
            return changed
        raise StaleVersion(f"the split of {order.order_id} kept changing")

    # ---- execution at the provider (job) ------------------------------------------------

    async def execute_due(self) -> int:
        """Shares what splits owe at the provider, and returns what reversals take back;
        retries PENDING and PROCESSING calls. Keyed at the provider, so a repeat is harmless."""
        moved = 0
        for record in await self.splits.needing_work(WORK_BATCH):
            try:
                moved += await self._execute(record, self.sharing)
            except StaleVersion:
                continue  # another replica moved it: the next run reads it again
            except Exception as error:  # noqa: BLE001 - one provider failure must not starve the other splits
                log.warning("split_execution_failed", split_id=record.id, error=str(error))
        return moved

    async def _execute(self, record: SplitRecord, sharing: ProfitSharing) -> int:
        now = self._now()
        changed = False
        txn = await self.transactions.provider_txn_id(record.merchant_id, record.payment_id)
        if record.share_state != SHARE_FINISHED and txn:
            if record.shares:
                result = await sharing.share(ShareRequest(
                    merchant_id=record.merchant_id, provider_txn_id=txn, split_id=record.id,
                    receivers=[ShareReceiver(kind="MERCHANT_ID", account=s.account, amount=s.amount,
                                             description="platform fee" if s.kind == PLATFORM else "supplier cost")
                               for s in record.shares]))
            else:  # nobody to share with: the whole provider part goes to the merchant now
                result = await sharing.unfreeze(record.merchant_id, txn, record.id)
            state = SHARE_FINISHED if result.state == "FINISHED" else SHARE_PROCESSING
            changed |= record.share_moved(state, now)
        if record.share_state == SHARE_FINISHED:
            for r in record.open_returns:
                answer = await sharing.return_share(ShareReturnRequest(
                    merchant_id=record.merchant_id, split_id=record.id, return_id=r.return_id, account=r.account,
                    amount=r.amount, description="refund"))
                state = {"SUCCESS": RETURN_SUCCESS, "FAILED": RETURN_FAILED}.get(answer.state, RETURN_PROCESSING)
                changed |= record.return_moved(r.return_id, state, now)
        if changed:
            await self.splits.save(record)
        return int(changed)
