from django.urls import path

from earn import api

urlpatterns = [
    path("earn", api.EarnView.as_view(), name="earn"),
    path("earn/activation", api.ActivationView.as_view(), name="earn-activation"),
    path("earn/interest", api.InterestView.as_view(), name="earn-interest"),
]
