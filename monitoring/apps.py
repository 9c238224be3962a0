from django.apps import AppConfig
from django.core.signals import request_finished


class MonitoringConfig(AppConfig):
    name = "monitoring"
    verbose_name = "Health and metrics"

    def ready(self) -> None:
        from monitoring.middleware import forget_request_id

        request_finished.connect(forget_request_id, dispatch_uid="monitoring.forget_request_id")
