from django.urls import path

from referrals import api, service_api

urlpatterns = [
    path("referrals/me", api.MyReferralView.as_view(), name="my-referral"),
    path("referrals/me/invitees", api.MyInviteesView.as_view(), name="my-invitees"),
    path("referrals/me/commissions", api.MyCommissionsView.as_view(), name="my-commissions"),
    path(
        "referrals/users/<path:user_id>",
        service_api.UserReferralCodeView.as_view(),
        name="user-referral-code",
    ),
    path(
        "referrals/codes/<str:code>",
        service_api.ReferralCodeOwnerView.as_view(),
        name="referral-code-owner",
    ),
    path(
        "referrals/partners/<path:user_id>",
        service_api.PartnerView.as_view(),
        name="community-partner",
    ),
]
