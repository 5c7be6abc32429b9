"""Scoring generated SQL against gold SQL."""
