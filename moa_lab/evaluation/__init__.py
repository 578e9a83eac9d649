"""Evaluation: experiments (topology x queries) run to a RunLog."""

from moa_lab.evaluation._experiment import BudgetSpec, DatasetSpec, Experiment, ExperimentSpec
from moa_lab.evaluation._runner import RunSummary, run_experiment

__all__ = ["BudgetSpec", "DatasetSpec", "Experiment", "ExperimentSpec", "RunSummary", "run_experiment"]
