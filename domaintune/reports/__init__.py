"""Reports on finished runs: the HTML run report and run comparison."""

from __future__ import annotations
