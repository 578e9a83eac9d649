"""Scoring: scorers (exact, numeric, choice), LLM judges, and the statistics of a run."""

from moa_lab.scoring._metrics import Estimate, bootstrap_ci, estimate, mean_stderr, paired_difference, percentile
from moa_lab.scoring._judges import PairwiseJudge, RubricJudge, SingleJudge
from moa_lab.scoring._scorer import Match, Scorer, ScoringContext, SummarizingScorer, scorer
from moa_lab.scoring._scoring import Scoring

__all__ = [
    "Estimate",
    "Match",
    "PairwiseJudge",
    "RubricJudge",
    "Scorer",
    "Scoring",
    "ScoringContext",
    "SingleJudge",
    "SummarizingScorer",
    "bootstrap_ci",
    "estimate",
    "mean_stderr",
    "paired_difference",
    "percentile",
    "scorer",
]
