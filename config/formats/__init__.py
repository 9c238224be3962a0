"""The project's date and time formats (``FORMAT_MODULE_PATH``).

Django always formats dates with the active language's format module, whose
English one writes "Dec. 1, 2026, 10:06 p.m."; settings such as
``DATETIME_FORMAT`` are only its fallback. The admin, the dashboard and the
support view show instants in one ISO-like spelling instead, always in UTC:
``2026-12-01 22:06:05 UTC``.
"""
