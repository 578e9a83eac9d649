"""The paper's analyses from RunLogs: quality against the number of proposers (single- and
multi-proposer), aggregator against ranker, layer by layer, proposer against aggregator roles,
similarity of the aggregate to each proposal, quality against cost, and answer length; each an
`Analysis` (rows, a matplotlib Figure object, notes) written as PNG and CSV, and a static HTML report."""

from moa_lab.analysis._cost import cost, external_quality, front, front_area
from moa_lab.analysis._layers import layers, ranker
from moa_lab.analysis._length import length
from moa_lab.analysis._proposers import proposers
from moa_lab.analysis._report import Report, Section, render, runs_report, summary_rows, write_report
from moa_lab.analysis._roles import roles
from moa_lab.analysis._runs import Analysis, runlogs, write_csv
from moa_lab.analysis._similarity import similarity
from moa_lab.analysis._study import study_report

__all__ = [
    "Analysis",
    "Report",
    "Section",
    "cost",
    "external_quality",
    "front",
    "front_area",
    "layers",
    "length",
    "proposers",
    "ranker",
    "render",
    "roles",
    "runlogs",
    "runs_report",
    "similarity",
    "study_report",
    "summary_rows",
    "write_csv",
    "write_report",
]
