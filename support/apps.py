from django.apps import AppConfig


class SupportConfig(AppConfig):
    name = "support"
    verbose_name = "Ops dashboard and support"
