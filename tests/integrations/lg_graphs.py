"""Model-free LangGraph graphs for the JournalSaver tests (also run as a child process).

    python lg_graphs.py ROOT THREAD_ID STEPS [--resume]   # the growing conversation

prints ``step <n>`` (flushed) as each step runs, so a parent can SIGKILL it mid-run, and the
final message count at the end.
"""

from __future__ import annotations

import operator
import sys
from typing import Annotated, Any, TypedDict

from langchain_core.messages import AIMessage, AnyMessage, HumanMessage
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.types import Command, Send, interrupt

PAD = "x" * 440  # with the message's other fields, ~500 bytes per step


class Chat(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]
    n: int
    goal: int


def chat_graph(checkpointer: Any, *, echo: bool = False) -> Any:
    """A conversation that gains one ~500 B message per step until ``goal``."""

    def speak(s: Chat) -> dict[str, Any]:
        n = s["n"] + 1
        if echo:
            print(f"step {n}", flush=True)
        cls = AIMessage if n % 2 else HumanMessage
        return {"messages": [cls(f"turn {n} {PAD}", id=f"m{n}")], "n": n}

    b = StateGraph(Chat)
    b.add_node("speak", speak)
    b.add_edge(START, "speak")
    b.add_conditional_edges("speak", lambda s: "speak" if s["n"] < s["goal"] else END)
    return b.compile(checkpointer=checkpointer)


def chat_input(goal: int) -> dict[str, Any]:
    return {"messages": [HumanMessage("hello", id="m0")], "n": 0, "goal": goal}


def run_config(thread_id: str, steps: int) -> dict[str, Any]:
    return {"configurable": {"thread_id": thread_id}, "recursion_limit": steps + 10}


class Review(TypedDict):
    draft: str
    verdict: str


def review_graph(checkpointer: Any) -> Any:
    """Writes a draft, asks a human (interrupt), then records the answer."""

    def write(s: Review) -> dict[str, Any]:
        return {"draft": s["draft"] + " v1"}

    def ask(s: Review) -> dict[str, Any]:
        answer = interrupt({"question": "approve?", "draft": s["draft"]})
        return {"verdict": f"{answer} for {s['draft']}"}

    b = StateGraph(Review)
    b.add_node("write", write)
    b.add_node("ask", ask)
    b.add_edge(START, "write")
    b.add_edge("write", "ask")
    b.add_edge("ask", END)
    return b.compile(checkpointer=checkpointer)


class Fan(TypedDict):
    items: list[int]
    results: Annotated[list[str], operator.add]


def fan_graph(checkpointer: Any) -> Any:
    """``Send`` fan-out: one worker task per item, results gathered by a reducer."""

    def work(s: dict[str, Any]) -> dict[str, Any]:
        return {"results": [f"done {s['item']}"]}

    b = StateGraph(Fan)
    b.add_node("work", work)
    b.add_conditional_edges(START, lambda s: [Send("work", {"item": i}) for i in s["items"]])
    b.add_edge("work", END)
    return b.compile(checkpointer=checkpointer)


class Outer(TypedDict):
    log: Annotated[list[str], operator.add]


def nested_graph(checkpointer: Any) -> Any:
    """A parent graph whose middle node is a subgraph that interrupts (child namespace)."""

    def inner_a(s: Outer) -> dict[str, Any]:
        return {"log": ["inner a"]}

    def inner_b(s: Outer) -> dict[str, Any]:
        ok = interrupt("inner needs ok")
        return {"log": [f"inner b {ok}"]}

    ib = StateGraph(Outer)
    ib.add_node("inner_a", inner_a)
    ib.add_node("inner_b", inner_b)
    ib.add_edge(START, "inner_a")
    ib.add_edge("inner_a", "inner_b")
    ib.add_edge("inner_b", END)
    inner = ib.compile()

    ob = StateGraph(Outer)
    ob.add_node("before", lambda s: {"log": ["before"]})
    ob.add_node("sub", inner)
    ob.add_node("after", lambda s: {"log": ["after"]})
    ob.add_edge(START, "before")
    ob.add_edge("before", "sub")
    ob.add_edge("sub", "after")
    ob.add_edge("after", END)
    return ob.compile(checkpointer=checkpointer)


def _main(argv: list[str]) -> None:
    from agentjournal.integrations.langgraph import JournalSaver

    root, thread, steps = argv[0], argv[1], int(argv[2])
    with JournalSaver(root) as saver:
        g = chat_graph(saver, echo=True)
        cfg = run_config(thread, steps)
        if "--resume" in argv:
            out = g.invoke(None, cfg, durability="sync")
        elif "--review" in argv:
            out = review_graph(saver).invoke({"draft": "memo", "verdict": ""}, cfg)
        elif "--answer" in argv:
            out = review_graph(saver).invoke(Command(resume=argv[-1]), cfg)
        else:
            out = g.invoke(chat_input(steps), cfg, durability="sync")
    if "messages" in out:
        print(f"final {len(out['messages'])} {out['n']}", flush=True)
    else:
        print(f"final {out}", flush=True)


if __name__ == "__main__":
    _main(sys.argv[1:])
