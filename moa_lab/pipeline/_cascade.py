"""Cascaded layers: a layer's proposers called stage by stage until their answers agree.

The rule is the spec's (`moa_lab.topology.CascadeSpec`) and the measure is `moa_lab.answers.agreement`;
this module only runs it: each stage's new proposers concurrently, then the agreement of every
proposal the layer holds so far (a failed proposal counts as an answer that agrees with none), then
either stop or call the next stage. Each stage becomes a `Stage` of the query's record, and each call
carries its stage number, so a trace shows which calls a stage made and why the layer stopped.

Admission is unchanged: a query is admitted on its worst case, which is every stage of every layer
(`plan_query` plans every agent), and what the stages never called is released when the query ends.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from moa_lab.answers import Agreement, agreement, similarity_agreement
from moa_lab.core import Answer, Proposal, Stage
from moa_lab.registry import build
from moa_lab.topology import Agent, CascadeSpec

CallStage = Callable[[Sequence[Agent], int], Awaitable[list[Proposal]]]
"""Runs some agents of a layer concurrently as stage `n` and returns their proposals in order."""


@dataclass(frozen=True)
class LayerOutcome:
    """What a cascaded layer produced: every proposal called, one `Stage` per stage run, and the
    agreement of the proposals after the last one."""

    proposals: list[Proposal]
    stages: list[Stage]
    agreement: Agreement

    @property
    def agreed(self) -> bool:
        return self.stages[-1].agreed


class Cascade:
    """A layer's `CascadeSpec`, built: its extractor (for `share`/`margin`) or embedder (for
    `similarity` by embeddings) resolved once, when the Pipeline is built."""

    def __init__(self, spec: CascadeSpec, *, where: str = "cascade") -> None:
        self.spec = spec
        self.extract: Callable[[str], str] | None = None
        self.embedder: Any = None
        if spec.measure != "similarity":
            self.extract = build("extractor", spec.extractor, where=f"{where}.extractor")
        elif spec.embedder is not None:
            from moa_lab.embedding import build_embedder

            self.embedder = build_embedder(spec.embedder)

    async def run(self, agents: Sequence[Agent], call_stage: CallStage, layer: int) -> LayerOutcome:
        """Call `agents` in the spec's stages, stopping after the first stage whose proposals agree
        at least `threshold`."""
        proposals: list[Proposal] = []
        stages: list[Stage] = []
        called = 0
        for number, bound in enumerate(self.spec.bounds(len(agents)), 1):
            proposals += await call_stage(agents[called:bound], number)
            called = bound
            measured = await self.agreement(proposals)
            agreed = measured.value >= self.spec.threshold
            stages.append(Stage(layer, number, len(proposals), measured.value, agreed))
            if agreed:
                break
        return LayerOutcome(proposals, stages, measured)

    async def agreement(self, proposals: Sequence[Proposal]) -> Agreement:
        """How much `proposals` agree by the spec's measure (failed ones as empty answers)."""
        texts = [p.text if p.ok else "" for p in proposals]
        if self.spec.measure != "similarity":
            return agreement(texts, self.spec.measure, extract=self.extract)
        if self.embedder is None:
            return similarity_agreement(texts)
        return await asyncio.to_thread(self._embedded_agreement, texts)

    def _embedded_agreement(self, texts: list[str]) -> Agreement:
        """Mean pairwise cosine of the answers' embeddings (clipped at 0)."""
        from moa_lab.embedding import embed

        stated = list(dict.fromkeys(t for t in texts if t.strip()))
        vectors = dict(zip(stated, embed(self.embedder, stated))) if stated else {}
        return similarity_agreement(texts, lambda a, b: float(vectors[a] @ vectors[b]))

    def exit_answer(self, outcome: LayerOutcome) -> Answer | None:
        """With `exit`, the answer of a layer that ended agreeing: its representative proposal
        (None when the layer did not agree, or the spec has no exit)."""
        chosen = outcome.agreement.chosen
        if not self.spec.exit or not outcome.agreed or chosen is None:
            return None
        picked = outcome.proposals[chosen]
        layer = outcome.stages[-1].layer
        note = f"cascade exit after layer {layer}: agreement {outcome.agreement.value:.2f} >= {self.spec.threshold:g}"
        return Answer(picked.text, picked.agent, chosen, note=note)
