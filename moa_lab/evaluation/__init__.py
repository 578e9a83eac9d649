"""Evaluation: experiments (topology x benchmark x scorer) run to RunLogs, with statistics."""

from moa_lab.evaluation._evaluate import EvalSummary, evaluate, score_result, summarize
from moa_lab.evaluation._experiment import BenchmarkSpec, BudgetSpec, DatasetSpec, Experiment, ExperimentSpec, TrackingSpec
from moa_lab.evaluation._runner import RunSummary, run_experiment
from moa_lab.evaluation._suite import Group, build_scorer, groups, project_root, run_suite

__all__ = [
    "BenchmarkSpec",
    "BudgetSpec",
    "DatasetSpec",
    "EvalSummary",
    "Experiment",
    "ExperimentSpec",
    "Group",
    "RunSummary",
    "TrackingSpec",
    "build_scorer",
    "evaluate",
    "groups",
    "project_root",
    "run_experiment",
    "run_suite",
    "score_result",
    "summarize",
]
