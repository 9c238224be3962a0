from django.urls import path

from referrals import api, service_api

urlpatterns = [
    path("referrals/me", api.MyReferralView.as_view(), name="my-referral"),
    path("referrals/me/invitees", api.MyInviteesView.as_view(), name="my-invitees"),
    path("referrals/me/commissions", api.MyCommissionsView.as_view(), name="my-commissions"),
    path("referrals/codes", service_api.ReferralCodeView.as_view(), name="referral-codes"),
    path("referrals/partners", service_api.PartnerView.as_view(), name="community-partners"),
]
