"""How replay rebuilds the campaigns (replay.registry): registrations, spins
and invitations are performed again; draws, voids and bonuses are decided
again by the jobs."""

from __future__ import annotations

from collections.abc import Iterator
from itertools import groupby

from campaigns import services
from campaigns.models import Campaign
from replay import registry
from replay.registry import RecordedEvent


def _campaign(event: RecordedEvent) -> Campaign:
    return Campaign.objects.get(slug=event.data["campaign"])


def _by_campaign(batch: list[RecordedEvent]) -> Iterator[tuple[Campaign, list[RecordedEvent]]]:
    for slug, events in groupby(batch, key=lambda event: event.data["campaign"]):
        yield Campaign.objects.get(slug=slug), list(events)


def _register(batch: list[RecordedEvent]) -> registry.Refusals:
    # Registrations at one instant are decided together (one read of each
    # kind, one append), as a thousand requests would decide them one by one.
    refusals = []
    for campaign, events in _by_campaign(batch):
        _, refused = services.register_many(campaign, [event.user_id for event in events])
        refusals += [
            (event.event_id, "not eligible: " + ", ".join(refused[event.user_id]))
            for event in events
            if event.user_id in refused
        ]
    return refusals


def _spin(batch: list[RecordedEvent]) -> registry.Refusals:
    refusals = []
    for campaign, events in _by_campaign(batch):
        spins = [(event.user_id, _SPIN_KINDS[event.type]) for event in events]
        outcomes = services.spin_many(campaign, spins)
        refusals += [
            (event.event_id, str(outcome))
            for event, outcome in zip(events, outcomes, strict=True)
            if isinstance(outcome, services.CampaignRefusal)
        ]
    return refusals


_SPIN_KINDS = {"campaign.card_drawn": "coverage", "campaign.daily_prize_won": "daily"}


def _invite(batch: list[RecordedEvent]) -> None:
    for event in batch:
        services.invite(_campaign(event), event.data["users"], source=event.data["source"])


registry.action("campaign.registered", _register, batched=True)
for spin_type in _SPIN_KINDS:
    registry.action(spin_type, _spin, batched=True, group="campaign.spin")
registry.action("campaign.invited", _invite)
registry.decisions(
    "campaign.spins_voided",
    "campaign.coverage_drawn",
    "campaign.rewards_voided",
    "campaign.bonuses_issued",
)

registry.compared(
    "campaigns: participants",
    "SELECT c.slug, p.user_id, p.registered_at, p.card_percent, p.card_drawn_at"
    " FROM campaigns_participant p JOIN campaigns_campaign c ON c.id = p.campaign_id"
    ' ORDER BY c.slug COLLATE "C", p.user_id COLLATE "C"',
    key_columns=2,
)
registry.compared(
    "campaigns: invitations",
    "SELECT c.slug, i.user_id, i.invited_at, i.source"
    " FROM campaigns_invitation i JOIN campaigns_campaign c ON c.id = i.campaign_id"
    ' ORDER BY c.slug COLLATE "C", i.user_id COLLATE "C"',
    key_columns=2,
)
registry.compared(
    "campaigns: spin allowances",
    "SELECT c.slug, s.user_id, s.valid_volume, s.coverage_granted_at, s.daily_earned"
    " FROM campaigns_spinallowance s JOIN campaigns_campaign c ON c.id = s.campaign_id"
    ' ORDER BY c.slug COLLATE "C", s.user_id COLLATE "C"',
    key_columns=2,
)
registry.compared(
    "campaigns: daily spins",
    "SELECT c.slug, d.user_id, d.number, d.amount, d.spun_at"
    " FROM campaigns_dailyspin d JOIN campaigns_campaign c ON c.id = d.campaign_id"
    ' ORDER BY c.slug COLLATE "C", d.user_id COLLATE "C", d.number',
    key_columns=3,
)
registry.compared(
    "campaigns: coverage draws",
    "SELECT c.slug, d.user_id, d.percent, d.losing_orders, d.covered, d.candidates_digest,"
    " d.chosen, d.drawn_at"
    " FROM campaigns_coveragedraw d JOIN campaigns_campaign c ON c.id = d.campaign_id"
    ' ORDER BY c.slug COLLATE "C", d.user_id COLLATE "C"',
    key_columns=2,
)
registry.compared(
    "campaigns: rewards",
    "SELECT idempotency_key, user_id, kind, reference, amount, earned_at"
    ' FROM campaigns_reward ORDER BY idempotency_key COLLATE "C"',
)
registry.compared(
    "campaigns: job state",
    "SELECT slug, spins_position > 0, drawn_at, spins_voided_at, bonuses_issued_at,"
    " prizes_committed, budget_alert, budget_alert_at FROM campaigns_campaign"
    ' ORDER BY slug COLLATE "C"',
)
