from django.urls import path

from referrals import api

urlpatterns = [
    path("referrals/me", api.MyReferralView.as_view(), name="my-referral"),
    path("referrals/me/invitees", api.MyInviteesView.as_view(), name="my-invitees"),
    path("referrals/me/commissions", api.MyCommissionsView.as_view(), name="my-commissions"),
]
