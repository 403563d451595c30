"""The monthly events pipeline: ``YYYY/MM/events.csv`` -> cleaned Parquet + warehouse fact + analyses.

from headwater.events import process_month, analyse
df = process_month("s3://bucket", "2021-01")      # a pandas DataFrame of the cleaned month
"""

from headwater.events.analysis import EventsAnalysis, analyse, analyse_table
from headwater.events.pipeline import MonthReport, load_month, process_month, processed_uri, run_month
from headwater.events.source import Month, MonthFile, discover_months, find_month, month_range

__all__ = [
    "EventsAnalysis",
    "Month",
    "MonthFile",
    "MonthReport",
    "analyse",
    "analyse_table",
    "discover_months",
    "find_month",
    "load_month",
    "month_range",
    "process_month",
    "processed_uri",
    "run_month",
]
