from django.urls import path

from ledger import api

urlpatterns = [
    path("events", api.EventBatchView.as_view(), name="events"),
    path("payouts", api.PayoutListView.as_view(), name="payouts"),
    path("payouts/<int:payout_id>/ack", api.PayoutAckView.as_view(), name="payout-ack"),
    path("me/ledger", api.MyLedgerView.as_view(), name="my-ledger"),
]
