from __future__ import annotations

import pytest

from moa_lab.agents import Example, chat_messages, completion_prompt, references_block
from moa_lab.agents._prompts import parse_choice, to_examples
from moa_lab.core import ConfigError

PAPER = (
    "You have been provided with a set of responses from various open-source models to the latest user query. "
    "Your task is to synthesize these responses into a single, high-quality response. It is crucial to critically "
    "evaluate the information provided in these responses, recognizing that some of it may be biased or incorrect. "
    "Your response should not simply replicate the given answers but should offer a refined, accurate, and "
    "comprehensive reply to the instruction. Ensure your response is well-structured, coherent, and adheres to the "
    "highest standards of accuracy and reliability.\n\nResponses from models:"
)


def test_synthesize_prompt_is_the_papers_with_numbered_responses() -> None:
    assert references_block(["Paris.", "It is Paris"]) == PAPER + "\n1. Paris.\n2. It is Paris"


def test_japanese_variant_keeps_the_structure() -> None:
    block = references_block(["パリ", "Paris"], language="ja")
    assert block.startswith("最新のユーザーの質問に対して")
    assert block.endswith("モデルからの回答:\n1. パリ\n2. Paris")


def test_references_follow_an_existing_system_prompt() -> None:
    messages = chat_messages("Q?", system="Be brief.", references=["a"])
    assert [m.role for m in messages] == ["system", "user"]
    assert messages[0].content == "Be brief.\n\n" + PAPER + "\n1. a"


def test_examples_become_turns() -> None:
    messages = chat_messages("3?", examples=[Example("1?", "one"), Example("2?", "two")])
    assert [m.role for m in messages] == ["user", "assistant", "user", "assistant", "user"]


def test_completion_prompt_qa_and_lines() -> None:
    qa = completion_prompt("Capital of France?", format="qa", instruction="Answer with one word.",
                           examples=[Example("Capital of Italy?", "Rome")])
    assert qa == "Answer with one word.\n\nQ: Capital of Italy?\nA: Rome\n\nQ: Capital of France?\nA:"
    lines = completion_prompt("3 + 4 =", format="lines", examples=[Example("2 + 5 =", "7")])
    assert lines == "2 + 5 = 7\n3 + 4 ="


def test_completion_prompt_shows_proposed_answers() -> None:
    text = completion_prompt("up ->", format="qa", examples=[Example("hot", "cold", ("cold", "warm"))], references=["down", "Down\n"])
    assert text == "Q: hot\nProposed answers: cold, warm\nA: cold\n\nQ: up ->\nProposed answers: down, Down\nA:"
    with pytest.raises(ConfigError):
        completion_prompt("x", format="lines", references=["a"])


@pytest.mark.parametrize(("verdict", "n", "expected"), [("2", 3, 2), ("Response 3 is best", 3, 3), ("7 then 1", 3, 1), ("none", 3, None)])
def test_parse_choice(verdict: str, n: int, expected: int | None) -> None:
    assert parse_choice(verdict, n) == expected


def test_examples_from_config() -> None:
    assert to_examples([["a", "b"], {"input": "c", "output": "d", "proposals": ["d", "e"]}]) == (
        Example("a", "b"), Example("c", "d", ("d", "e")))
    with pytest.raises(ConfigError, match=r"examples\[0\]"):
        to_examples(["just text"])
