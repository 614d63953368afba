"""Deterministic workloads for the checkpointer benchmarks.

Everything here is a pure function of a seed, so every system measured in a run (and every run on
every machine) sees byte-identical data.

Workload 1 ("growing conversation"): step ``i`` (1-based) appends message ``i`` (~500 bytes of
varied English-like text, role alternating user/assistant), sets ``counter = i`` and adds
``cost(i)`` to the ``budget`` float. The canonical state is the dict
``{"messages": [...], "counter": int, "budget": float}``; after 1000 steps it is ~500 KB of JSON.

Workload 1n ("growing conversation with numbers"): the same, but every message also carries
what an LLM call reports: ``usage`` token counts (ints), ``cost_usd`` and ``latency_s`` (floats)
and ``cached`` (a bool), so no message is number-free (see ``Workload(numbers=True)``).

Workload 3 ("large states"): :func:`state_of_size` builds a state of that same shape whose JSON
encoding is about the requested number of bytes (1 KB, 20 KB, 500 KB).

The text is generated from word lists written for this file, combined by sentence templates, so
it compresses about as well as real prose (gzip ~2.5-3x) and not like repeated characters.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from typing import Any

DEFAULT_SEED = 20240611
MESSAGE_BYTES = 500  # target size of one message as JSON, in bytes (the text is ASCII)

# ---------------------------------------------------------------------------------------------
# Vocabulary. Written for this benchmark: the kind of words an agent's conversation about
# software, data and planning is made of. Large enough that text does not repeat in a window.
# ---------------------------------------------------------------------------------------------

_NOUNS = """
account adapter agent alert algorithm allocation analysis answer api approach archive argument
array assumption attempt audit backlog backup balance bandwidth baseline batch benchmark branch
browser buffer budget bug build bundle cache calendar call campaign candidate capacity catalog
change channel chart checkpoint client cluster column command comment commit component condition
config connection constraint container context contract controller cookie counter coverage
credential customer dashboard database dataset deadline default delta dependency deployment
design detail device diagram diff directory document domain draft driver duration endpoint
engine entry environment error estimate event example exception experiment export extension
feature field figure file filter fixture folder forecast format function gateway graph handler
header heuristic history host hypothesis image import incident index input instance interface
invoice issue item iteration job journal kernel key label latency layer layout ledger library
limit link list log loop manifest mapping margin measurement memory message method metric
migration milestone mirror model module monitor namespace network node note notebook object
offset option order outline output owner package page parameter parser partition patch path
payload permission pipeline plan platform plugin policy pool port prediction price priority
process profile program project prompt property proposal protocol prototype provider query
queue quota range rate ratio reader record region registry release report repository request
requirement resource response result retry review revision risk role rollback route rule run
sample scenario schedule schema scope score script search secret section segment selector
server service session setting signal snapshot socket source spec spreadsheet stage state
statement status step storage strategy stream summary supplier survey switch symbol table tag
target task team template tenant test thread threshold ticket timeline timestamp token tool
topic trace transaction trend trigger tuple type update upload user validation value variable
vendor version view volume warning webhook window worker workflow workspace
""".split()

_VERBS = """
accept add adjust allocate analyse append approve archive assign audit avoid build cache
calculate check clean collect compare compile compress confirm connect convert copy count create
debug decide define delete deliver deploy describe detect document download draft drop enable
encode estimate evaluate examine exclude execute expand explain export extract fetch filter
finish fix flag flush follow format forward generate group handle highlight identify ignore
implement import improve include index inspect install integrate investigate join keep label
launch limit link list load locate lock log measure merge migrate monitor move normalise notify
open optimise order parse patch pause persist plan poll predict prepare prioritise probe process
publish query queue read rebuild record reduce refactor refresh reject release reload remove
rename render repair replace replay report request rerun reset resolve restore resume retry
return review revise rotate route run sample save scan schedule search select send serialise
ship simplify skip sort split stage start store stream submit summarise support suspend sync
tag test trace track transform trim truncate update upgrade upload validate verify watch wrap
write
""".split()

_ADJECTIVES = """
active actual additional alternative approximate asynchronous automatic available average
backward basic broken careful cheap clean clear cold complete compressed concurrent consistent
correct critical current daily dedicated default detailed different direct distinct duplicate
durable early easy efficient empty encrypted entire equal exact existing expensive explicit
external extra fast final first fixed flaky former fresh full general global green hard healthy
heavy hidden high idle immutable important incremental independent initial inner internal large
last late latest lightweight linear local long low main major manual maximum minimal minor
missing monthly mutable narrow native nested new next normal obvious old open optional original
other outer overdue parallel partial pending persistent plain possible precise previous primary
private public quick random rare raw readable recent red redundant regular relevant remote
repeated required reserved robust rough safe scheduled secondary secure separate sequential
serial shared short silent similar simple single slow small sparse specific stable stale standard
static steady strict strong structured successful sudden temporary tiny total transient typical
unknown unusual urgent useful valid verbose visible warm weekly wide
""".split()

_ADVERBS = """
again already also anyway apparently carefully certainly clearly currently definitely directly
easily eventually exactly finally first frequently fully generally gradually immediately
indeed instead just largely later likely manually mostly naturally nearly never now obviously
occasionally often only partly perhaps possibly probably quickly quietly rarely really recently
regularly roughly safely separately simply slowly sometimes soon still strictly suddenly
temporarily then today together typically usually yesterday
""".split()

_NAMES = """
Alice Bob Carol Dmitri Elena Farah Gustavo Hana Ines Jonas Kenji Leila Marco Nadia Omar Priya
Quentin Rosa Samir Tariq Uma Viktor Wen Xavier Yara Zoltan
""".split()

_PLACES = """
Berlin Lagos Lima Lisbon Montreal Mumbai Nairobi Osaka Oslo Porto Santiago Seoul Sydney Tallinn
Toronto Valencia Warsaw Zurich
""".split()

_OPENERS_USER = [
    "Can you", "Could you", "Please", "I need you to", "Would you", "Next, please", "Now",
    "Before we continue, can you", "One more thing: please", "When you have a moment,",
]
_OPENERS_ASSISTANT = [
    "Sure.", "Done.", "Understood.", "Here is what I found.", "I checked this.", "Good question.",
    "I looked into it.", "Short answer: yes.", "Short answer: not yet.", "Noted.",
]
_CONNECTORS = [
    "because", "although", "so", "but", "while", "unless", "after", "before", "since", "and then",
    "whereas", "until", "once", "even though",
]


def _a(rng: random.Random, words: list[str]) -> str:
    return words[rng.randrange(len(words))]


def _noun_phrase(rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.35:
        return f"the {_a(rng, _ADJECTIVES)} {_a(rng, _NOUNS)}"
    if roll < 0.55:
        return f"the {_a(rng, _NOUNS)} {_a(rng, _NOUNS)}"
    if roll < 0.70:
        return f"{rng.randint(2, 480)} {_a(rng, _NOUNS)}s"
    if roll < 0.80:
        return f"{_a(rng, _NAMES)}'s {_a(rng, _NOUNS)}"
    if roll < 0.88:
        ext = rng.choice(["py", "json", "yaml", "sql", "md"])
        return f"`{_a(rng, _NOUNS)}_{_a(rng, _NOUNS)}.{ext}`"
    return f"the {_a(rng, _NOUNS)}"


def _clause(rng: random.Random) -> str:
    roll = rng.random()
    subject = _noun_phrase(rng)
    if roll < 0.3:
        return f"{subject} should {_a(rng, _VERBS)} {_noun_phrase(rng)}"
    if roll < 0.5:
        return f"we {_a(rng, _ADVERBS)} {_a(rng, _VERBS)} {_noun_phrase(rng)}"
    if roll < 0.65:
        return f"{subject} is {_a(rng, _ADJECTIVES)} in {_a(rng, _PLACES)}"
    if roll < 0.8:
        return (f"{subject} took {rng.randint(3, 950)} ms over {rng.randint(2, 60)} runs, "
                f"about {rng.uniform(0.5, 99.5):.1f}% {_a(rng, _ADJECTIVES)}")
    if roll < 0.86:
        return f"I {_a(rng, _ADVERBS)} {_a(rng, _VERBS)} {subject} for {_a(rng, _NAMES)}"
    if roll < 0.93:
        return (f"{subject} in commit {rng.getrandbits(28):07x} {_a(rng, _VERBS)}s "
                f"{rng.randint(1, 9999)} {_a(rng, _NOUNS)}s on {_a(rng, _NAMES).lower()}-"
                f"{rng.randint(1, 64):02d}")
    return f"{subject} did not {_a(rng, _VERBS)} {_noun_phrase(rng)}"


def _sentence(rng: random.Random, role: str) -> str:
    roll = rng.random()
    if role == "user" and roll < 0.35:
        text = (f"{rng.choice(_OPENERS_USER)} {_a(rng, _VERBS)} {_noun_phrase(rng)} "
                f"{rng.choice(_CONNECTORS)} {_clause(rng)}?")
    elif roll < 0.75:
        text = f"{_clause(rng)} {rng.choice(_CONNECTORS)} {_clause(rng)}."
    else:
        text = f"{_clause(rng)}."
    return text[0].upper() + text[1:]


_MESSAGE_JSON_OVERHEAD = len(json.dumps({"role": "assistant", "content": ""}))


def make_message(rng: random.Random, index: int, size: int = MESSAGE_BYTES) -> dict[str, Any]:
    """One chat message whose JSON encoding is ~``size`` bytes (varied: +-15%)."""
    role = "user" if index % 2 == 1 else "assistant"
    size = max(20, size - _MESSAGE_JSON_OVERHEAD)  # ``size`` is for the whole JSON object
    target = rng.randint(int(size * 0.85), int(size * 1.15))
    parts: list[str] = []
    if role == "assistant":
        parts.append(rng.choice(_OPENERS_ASSISTANT))
    length = sum(len(p) + 1 for p in parts)
    while length < target:
        s = _sentence(rng, role)
        parts.append(s)
        length += len(s) + 1
    content = " ".join(parts)
    if len(content) > target:  # trim at a word boundary, keep a sentence end
        cut = content.rfind(" ", 0, target)
        content = content[: cut if cut > target // 2 else target].rstrip(",;:") + "."
    return {"role": role, "content": content}


def with_numbers(rng: random.Random, message: dict[str, Any]) -> dict[str, Any]:
    """``message`` plus the numbers an LLM call reports (token counts, cost, latency, cache)."""
    prompt = rng.randint(20, 8000)
    completion = rng.randint(1, 1500)
    return {**message,
            "usage": {"prompt_tokens": prompt, "completion_tokens": completion,
                      "total_tokens": prompt + completion},
            "cost_usd": round(prompt * 2.5e-6 + completion * 1e-5, 6),
            "latency_s": round(rng.uniform(0.05, 9.0), 3),
            "cached": rng.random() < 0.2}


@dataclass
class Workload:
    """The growing-conversation workload: messages and per-step costs, 1-based.

    ``numbers=True`` gives workload 1n: the same messages with token counts and floats.
    """

    steps: int
    seed: int = DEFAULT_SEED
    message_bytes: int = MESSAGE_BYTES
    numbers: bool = False
    messages: list[dict[str, Any]] = field(init=False, repr=False)
    costs: list[float] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        rng = random.Random(self.seed)
        # index 0 unused so that message(i) / cost(i) are 1-based like steps
        self.messages = [{}] + [make_message(rng, i, self.message_bytes)
                                for i in range(1, self.steps + 1)]
        if self.numbers:
            nrng = random.Random(self.seed + 2)
            self.messages = [{}] + [with_numbers(nrng, m) for m in self.messages[1:]]
        crng = random.Random(self.seed + 1)
        self.costs = [0.0] + [round(crng.uniform(0.0004, 0.03), 6)
                              for _ in range(self.steps)]

    def message(self, i: int) -> dict[str, Any]:
        return self.messages[i]

    def cost(self, i: int) -> float:
        return self.costs[i]

    def delta(self, i: int) -> dict[str, Any]:
        """What step ``i`` changes: one appended message, the counter, the budget increment."""
        return {"message": self.messages[i], "counter": i, "cost": self.costs[i]}

    def delta_bytes(self) -> int:
        """Bytes of new data over the whole run (JSON of every step's delta)."""
        return sum(len(json.dumps(self.delta(i)).encode()) for i in range(1, self.steps + 1))


def new_state() -> dict[str, Any]:
    return {"messages": [], "counter": 0, "budget": 0.0}


def apply_step(state: dict[str, Any], wl: Workload, i: int) -> None:
    """Apply step ``i`` to ``state`` in place (the canonical semantics every adapter follows)."""
    state["messages"].append(wl.messages[i])
    state["counter"] = i
    state["budget"] = state["budget"] + wl.costs[i]


def state_at(wl: Workload, k: int) -> dict[str, Any]:
    """The canonical state after ``k`` steps."""
    s = new_state()
    for i in range(1, k + 1):
        apply_step(s, wl, i)
    return s


def json_size(state: dict[str, Any]) -> int:
    return len(json.dumps(state).encode())


def states_equal(a: dict[str, Any] | None, b: dict[str, Any]) -> bool:
    """Canonical comparison used to check every adapter returns exactly what was recorded."""
    if a is None:
        return False
    return (a.get("counter") == b["counter"]
            and abs(float(a.get("budget", 0.0)) - b["budget"]) <= 1e-9 * max(1.0, abs(b["budget"]))
            and list(a.get("messages", [])) == b["messages"])


LARGE_STATE_SIZES = {"1KB": 1_000, "20KB": 20_000, "500KB": 500_000}


def state_of_size(target_bytes: int, seed: int = DEFAULT_SEED) -> dict[str, Any]:
    """A canonical-shaped state whose JSON encoding is within a few percent of ``target_bytes``.

    Built from whole messages; the last message is sized to land on the target.
    """
    rng = random.Random(seed + target_bytes)
    state = new_state()
    overhead = json_size(state)
    per_msg_overhead = len(json.dumps({"role": "assistant", "content": ""}).encode()) + 2
    budget = target_bytes - overhead
    i = 0
    while budget > per_msg_overhead + 40:
        i += 1
        size = min(MESSAGE_BYTES, budget - per_msg_overhead)
        m = make_message(rng, i, size=max(40, int(size / 1.15)) if size < MESSAGE_BYTES else size)
        state["messages"].append(m)
        budget -= len(json.dumps(m).encode()) + 2
        state["budget"] += round(rng.uniform(0.0004, 0.03), 6)
    state["counter"] = i
    return state


if __name__ == "__main__":  # quick look at the data
    import gzip

    w = Workload(1000)
    final = state_at(w, 1000)
    raw = json.dumps(final).encode()
    print("message 1:", w.message(1))
    print("message 2:", w.message(2))
    sizes = [len(json.dumps(w.message(i)).encode()) for i in range(1, 1001)]
    print(f"message JSON bytes: min {min(sizes)} mean {sum(sizes) / len(sizes):.0f} "
          f"max {max(sizes)}")
    print(f"final state: {len(raw)} bytes, gzip ratio {len(raw) / len(gzip.compress(raw)):.2f}")
    for name, n in LARGE_STATE_SIZES.items():
        print(name, json_size(state_of_size(n)))
