from django.apps import AppConfig


class LedgerConfig(AppConfig):
    name = "ledger"
    verbose_name = "Ledger and event store"

    def ready(self) -> None:
        from django.utils.module_loading import autodiscover_modules

        # Each app folds its read models in <app>/projections.py and owns its
        # apply_config sections in <app>/configuration.py.
        autodiscover_modules("projections", "configuration")
