"""Result dataclasses (the JSON contract) and their renderings."""
from rnopt.report.results import SCHEMA_VERSION, Report

__all__ = ["SCHEMA_VERSION", "Report"]
