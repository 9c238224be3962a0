from django.urls import path

from monitoring import health, metrics

# At the root, not under api/v1: probes and scrapers are configured with these paths.
urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", metrics.metrics, name="metrics"),
]
