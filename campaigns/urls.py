from django.urls import path

from campaigns import api

urlpatterns = [
    path("campaigns", api.CampaignListView.as_view(), name="campaigns"),
    path("campaigns/<slug:slug>", api.CampaignDetailView.as_view(), name="campaign"),
    path(
        "campaigns/<slug:slug>/eligibility",
        api.EligibilityView.as_view(),
        name="campaign-eligibility",
    ),
    path(
        "campaigns/<slug:slug>/eligibility/<path:user_id>",
        api.UserEligibilityView.as_view(),
        name="campaign-user-eligibility",
    ),
    path(
        "campaigns/<slug:slug>/registration",
        api.RegistrationView.as_view(),
        name="campaign-registration",
    ),
    path("campaigns/<slug:slug>/me", api.MeView.as_view(), name="campaign-me"),
    path("campaigns/<slug:slug>/spins", api.SpinView.as_view(), name="campaign-spins"),
    path("campaigns/<slug:slug>/draw", api.DrawView.as_view(), name="campaign-draw"),
]
