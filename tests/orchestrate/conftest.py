"""Fixtures shared with the pipelines' own tests."""

from tests.goodreads.conftest import clean_data

__all__ = ["clean_data"]
