from django.apps import AppConfig


class ReplayConfig(AppConfig):
    name = "replay"
    verbose_name = "Replay and backtest"

    def ready(self) -> None:
        from django.utils.module_loading import autodiscover_modules

        # Each app says in <app>/replaying.py how its events are replayed and
        # which of its tables replay compares.
        autodiscover_modules("replaying")
