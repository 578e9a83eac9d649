"""Evaluation: experiments (topologies x samples x scorer) run to RunLogs, with statistics."""

from moa_lab.evaluation._evaluate import evaluate
from moa_lab.evaluation._experiment import BenchmarkSpec, BudgetSpec, Experiment, ExperimentSpec, SplitSpec, TrackingSpec, project_root
from moa_lab.evaluation._recording import Recording, export_recording
from moa_lab.evaluation._runs import FINISHED, ExperimentRun, check_prices, git_commit, run_experiment, run_folder
from moa_lab.evaluation._sources import Group, build_scorer, groups, split_samples
from moa_lab.evaluation._summary import EvalSummary, summarize

__all__ = [
    "FINISHED",
    "BenchmarkSpec",
    "BudgetSpec",
    "EvalSummary",
    "Experiment",
    "ExperimentRun",
    "ExperimentSpec",
    "Group",
    "Recording",
    "SplitSpec",
    "TrackingSpec",
    "build_scorer",
    "check_prices",
    "evaluate",
    "export_recording",
    "git_commit",
    "groups",
    "project_root",
    "run_experiment",
    "run_folder",
    "split_samples",
    "summarize",
]
