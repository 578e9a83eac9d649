"""Search: Optuna studies over topologies under a hard budget (the only importer of optuna)."""

from moa_lab.search._config import SearchConfig, search_config, search_split, study_dir
from moa_lab.search._export import ExportedTrial, export_best
from moa_lab.search._front import evaluated, objectives, pareto, trial_table, write_front_plot
from moa_lab.search._holdout import Measured, Recheck, best_at_most, best_single, cheapest_at_least, recheck, single_model
from moa_lab.search._space import SearchSpace, suggest
from moa_lab.search._study import load_study, open_study, run_study, study_budget
from moa_lab.search._trial import TrialResult

__all__ = [
    "ExportedTrial",
    "Measured",
    "Recheck",
    "SearchConfig",
    "SearchSpace",
    "TrialResult",
    "best_at_most",
    "best_single",
    "cheapest_at_least",
    "evaluated",
    "export_best",
    "load_study",
    "objectives",
    "open_study",
    "pareto",
    "recheck",
    "run_study",
    "search_config",
    "search_split",
    "single_model",
    "study_budget",
    "study_dir",
    "suggest",
    "trial_table",
    "write_front_plot",
]
