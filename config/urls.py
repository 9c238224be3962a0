from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("api/v1/", include("ledger.urls")),
    path("api/v1/", include("campaigns.urls")),
    path("api/v1/", include("vouchers.urls")),
    path("api/v1/", include("referrals.urls")),
    path("api/v1/", include("earn.urls")),
    path("", include("monitoring.urls")),
]
