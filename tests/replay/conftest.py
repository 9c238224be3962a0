from tests.support.conftest import clock

__all__ = ["clock"]
