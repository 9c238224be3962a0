"""English (``en``, ``en-us``): ISO-like dates and UTC instants (config/formats)."""

# Seconds are kept: interval jobs run every 10 seconds, and a support agent
# lines a credit up with the wallet's records by its time.
DATETIME_FORMAT = "Y-m-d H:i:s T"
SHORT_DATETIME_FORMAT = "Y-m-d H:i:s T"
DATE_FORMAT = "Y-m-d"
SHORT_DATE_FORMAT = "Y-m-d"
TIME_FORMAT = "H:i:s"
YEAR_MONTH_FORMAT = "Y-m"
MONTH_DAY_FORMAT = "m-d"
