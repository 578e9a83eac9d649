"""Agents: proposers and aggregators, their decorators, prompts and built-ins."""

from moa_lab.agents._agent import AgentContext, Aggregator, Proposer, aggregator, extractor, proposer
from moa_lab.agents._builtin import AggregationError, PlainProposer, Rank, Synthesize, Vote
from moa_lab.agents._prompts import Example, chat_messages, completion_prompt, references_block, template

__all__ = [
    "AgentContext",
    "AggregationError",
    "Aggregator",
    "Example",
    "PlainProposer",
    "Proposer",
    "Rank",
    "Synthesize",
    "Vote",
    "aggregator",
    "chat_messages",
    "completion_prompt",
    "extractor",
    "proposer",
    "references_block",
    "template",
]
