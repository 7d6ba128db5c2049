"""Grounded facts: what the fact evaluator keeps of a model's claims."""

from __future__ import annotations

import pytest
from carrier_plugin_bootstrap.grounding import grounded, states_something, verbatim_facts

NAMES = ("Ada", "Nova")

#: (message, claim, kept): claims seen from small models, invented ones included.
CASES = [
    ("My name is Ada", "My name is Ada", True),
    ("My name is Ada", "The user's name is Ada.", True),
    ("My name is Ada", "My name is Elena, I'm a creative writing student", False),
    ("My name is Ada", "Ada was born in Barcelona.", False),
    ("My name is Ada", "Ada works at TechCorp.", False),
    ("I live in Oslo and work as a nurse", "Ada lives in Oslo.", True),
    ("I live in Oslo and work as a nurse", "Ada works as a nurse.", True),
    ("I live in Oslo and work as a nurse", "Ada lives in Bergen.", False),
    ("I live in Oslo and work as a nurse", "Ada is a doctor in Oslo.", False),
    ("I have 2 cats named Tom and Jerry", "Ada has 2 cats, Tom and Jerry.", True),
    ("I have 2 cats named Tom and Jerry", "Ada has 3 cats.", False),
    ("I'm a software engineer on a team of 10", "Ada is a software engineer.", True),
    ("I'm a software engineer on a team of 10", "Ada's team has 12 people.", False),
    ("I love hiking in the mountains", "Ada enjoys hiking in the mountains.", True),
    ("I love hiking in the mountains", "Ada is a professional climber.", False),
    ("my bank PIN is 4321", "Ada's bank PIN is 4321.", True),
    ("my bank PIN is 4321", "Ada's bank PIN is 1234.", False),
    ("What's the weather like?", "Ada likes sunny weather.", False),
    ("I bake bread for a living", "Ada bakes bread for a living.", True),
    ("I'm studying to be a teacher", "Ada is a student.", False),
    ("I'm working on a novel", "Ada works on a novel.", True),
]


@pytest.mark.parametrize(("message", "claim", "kept"), CASES)
def test_grounded(message: str, claim: str, kept: bool) -> None:
    assert grounded(claim, message, names=NAMES) is kept


def test_verbatim_facts_keep_first_person_statements() -> None:
    message = "Hi there! My name is Ada. I live in Oslo. What is your name? Nice."
    assert verbatim_facts(message) == ["My name is Ada.", "I live in Oslo."]


def test_verbatim_facts_skip_questions() -> None:
    assert verbatim_facts("What is my name? Do I have a cat?") == []


def test_verbatim_facts_skip_requests_to_the_agent() -> None:
    message = (
        "Tell me one short thing about the number 5. Please give me a hint! "
        "Message 3: show us the way. Let me know when it rains. "
        "My sister gave me a cat. I told my brother about it."
    )
    assert verbatim_facts(message) == ["My sister gave me a cat.", "I told my brother about it."]


@pytest.mark.parametrize(
    ("message", "states"),
    [
        ("My name is Ada.", True),
        ("What is my name? I'm Ada.", True),
        ("The train was late again", True),
        ("What is my name?", False),
        ("Message 7: tell me one short thing about the number 7.", False),
        ("Please remind me at noon! Do cats like fish?", False),
        ("hi", False),
    ],
)
def test_states_something(message: str, states: bool) -> None:
    assert states_something(message) is states
