"""Search: Optuna studies over topologies under a hard budget (the only importer of optuna)."""

from moa_lab.search._space import SearchSpace, suggest
from moa_lab.search._ledger import LedgerBudget
from moa_lab.search._study import (
    SearchConfig,
    TrialResult,
    load_study,
    open_study,
    pareto,
    run_study,
    study_budget,
    search_config,
    trial_table,
)

__all__ = [
    "LedgerBudget",
    "open_study",
    "SearchConfig", "SearchSpace", "TrialResult", "load_study", "pareto", "run_study", "study_budget", "search_config", "suggest", "trial_table"]
