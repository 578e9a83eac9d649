"""Topologies: frozen specs (YAML is their serialisation), presets, and the builder."""

from moa_lab.topology._builder import Agent, Topology, build_topology, load_topology, with_cascade
from moa_lab.topology._io import read_yaml, to_yaml, validate
from moa_lab.topology._presets import PAPER_PROPOSERS, preset
from moa_lab.topology._tasks import for_task, task_aggregator, task_prompt
from moa_lab.topology._spec import AgentSpec, CascadeSpec, LayerSpec, SelectorSpec, TopologySpec

__all__ = [
    "PAPER_PROPOSERS",
    "Agent",
    "AgentSpec",
    "CascadeSpec",
    "LayerSpec",
    "SelectorSpec",
    "Topology",
    "TopologySpec",
    "build_topology",
    "for_task",
    "load_topology",
    "preset",
    "task_aggregator",
    "task_prompt",
    "read_yaml",
    "to_yaml",
    "validate",
    "with_cascade",
]
