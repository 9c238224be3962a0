"""Tables of the ledger app: the event store, quarantine, core read models,
and the double-entry ledger with its payout outbox."""

from ledger.models.accounts import Account, AccountKind, LedgerTransaction, Posting, UserAccountKind
from ledger.models.chain import LogLink
from ledger.models.events import Event, EventOrigin, ProjectionCheckpoint
from ledger.models.outbox import PayoutInstruction
from ledger.models.payables import PaidItem, PayoutDigest
from ledger.models.quarantine import QuarantinedInput, QuarantineStatus
from ledger.models.read_models import (
    ClosedOrder,
    ExchangeUser,
    FuturesPositionsState,
    FuturesWalletState,
    HoldingState,
    RiskMeasure,
)

__all__ = [
    "Account",
    "AccountKind",
    "ClosedOrder",
    "Event",
    "EventOrigin",
    "ExchangeUser",
    "FuturesPositionsState",
    "FuturesWalletState",
    "HoldingState",
    "LedgerTransaction",
    "LogLink",
    "PaidItem",
    "PayoutDigest",
    "PayoutInstruction",
    "Posting",
    "ProjectionCheckpoint",
    "QuarantineStatus",
    "QuarantinedInput",
    "RiskMeasure",
    "UserAccountKind",
]
