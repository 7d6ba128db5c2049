"""Whether an extracted fact is supported by the sender's own words.

A fact is *grounded* in a message when

- every name, number and other specific token it holds (a capitalized word that is
  not the sentence's first, any token with a digit) appears in the message, or is a
  name of the sender or the agent; and
- most of its content words (``share`` of them, after dropping stop words and those
  names) match a word of the message: equal, or sharing a prefix of at least four
  letters that leaves at most two letters of the shorter word ("lives" / "live",
  "works" / "working").

Models invent facts in two ways: specifics the user never gave ("works at
TechCorp", "born in Barcelona") and whole sentences about something else ("is a
creative writing student"). The first rule catches the first kind exactly; the
second catches the rest. ``tests/test_grounding.py`` lists the cases it was tuned
on, and a fact written verbatim from the message always passes.

``verbatim_facts`` is the fallback for models too weak to paraphrase reliably: the
message's own first-person statements, unchanged (requests to the agent are none).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

__all__ = ["grounded", "states_something", "verbatim_facts"]

_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9'’-]*")
_SENTENCE = re.compile(r"[^.!?\n]+[.!?]?")
_FIRST_PERSON = re.compile(r"\b(i|i'm|im|i've|i'd|i'll|my|mine|me|we|our|us)\b", re.IGNORECASE)
#: A request to the agent ("Tell me …", "Note 3: please show us …"): its "me" is no fact.
_REQUEST = re.compile(
    r"^(?:[^:]{1,30}:\s*)?(?:please\s+)?(?:tell|show|give|help|remind|send|teach|get|find"
    r"|bring|explain to|read|let me know)\b(?:\s+(?:me|us)\b)?",
    re.IGNORECASE,
)

STOP_WORDS = frozenset(
    """a about above after again against all also am an and any are as at be because been
    before being below between both but by can could did do does doing down during each
    few for from further had has have having he her here hers herself him himself his how
    i if in into is it its itself just me more most my myself no nor not now of off on
    once only or other our ours ourselves out over own same she should so some such than
    that the their theirs them themselves then there these they this those through to too
    under until up very was we were what when where which while who whom why will with
    would you your yours yourself yourselves user users i'm im i've i'd i'll it's that's
    named called name's really quite currently likes like loves love""".split()  # noqa: SIM905
)


def _stem(word: str) -> str:
    word = word.lower().replace("’", "'")
    return word[:-2] if word.endswith("'s") else word


def _words(text: str) -> list[str]:
    return [_stem(w) for w in _WORD.findall(text)]


def _specifics(text: str) -> set[str]:
    """Names and numbers: capitalized words past a sentence's start, tokens with digits."""
    found: set[str] = set()
    for sentence in _SENTENCE.findall(text):
        for index, raw in enumerate(_WORD.findall(sentence)):
            if any(c.isdigit() for c in raw) or (index > 0 and raw[0].isupper()):
                found.add(_stem(raw))
    return found


def _matches(word: str, vocabulary: Iterable[str]) -> bool:
    """Equal, or one word form of the other: a common prefix of at least four letters
    that leaves at most two letters of the shorter word ("lives"/"live",
    "works"/"working", not "student"/"studying")."""
    for known in vocabulary:
        if word == known:
            return True
        common = next(
            (i for i, (a, b) in enumerate(zip(word, known, strict=False)) if a != b),
            min(len(word), len(known)),
        )
        if common >= max(4, min(len(word), len(known)) - 2):
            return True
    return False


def grounded(fact: str, message: str, *, names: Iterable[str] = (), share: float = 0.6) -> bool:
    """Whether ``fact`` is supported by ``message`` (see the module docstring).

    Args:
        fact: The claim a model extracted.
        message: What the sender wrote.
        names: The sender's and the agent's names: a fact may name them freely.
        share: The part of the fact's content words that must match the message.
    """
    said = set(_words(message))
    known_names = {_stem(part) for name in names for part in _WORD.findall(name)}
    for token in _specifics(fact):
        if token not in said and token not in known_names:
            return False
    content = [w for w in _words(fact) if w not in STOP_WORDS and w not in known_names]
    if not content:
        return False
    matched = sum(1 for word in content if _matches(word, said))
    return matched / len(content) >= share


def _statements(message: str) -> Iterator[str]:
    """The message's sentences that are neither questions nor requests ("tell me …")."""
    for sentence in _SENTENCE.findall(message):
        text = sentence.strip()
        if text and not text.endswith("?") and _REQUEST.match(text) is None:
            yield text


def verbatim_facts(message: str, *, limit: int = 3) -> list[str]:
    """The message's first-person statements, as written: no questions, no requests
    ("tell me …"), no fragments."""
    found: list[str] = []
    for text in _statements(message):
        if len(text.split()) >= 3 and _FIRST_PERSON.search(text) is not None:
            found.append(text)
            if len(found) == limit:
                break
    return found


def states_something(message: str) -> bool:
    """Whether the message holds a statement: a sentence of two words or more that is
    neither a question nor a request."""
    return any(len(text.split()) >= 2 for text in _statements(message))
