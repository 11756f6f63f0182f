"""Renders the task state machine as a Mermaid diagram, from the same table the worker uses,
so the README's picture cannot drift from the code (`python -m fsm.diagram`)."""

from __future__ import annotations

from transitions.extensions import GraphMachine

from fsm.states import TRANSITIONS, State


def mermaid() -> str:
    """The state machine as Mermaid `stateDiagram-v2` source."""

    class _Model:
        pass

    model = _Model()
    GraphMachine(
        model=model,
        states=State,
        transitions=TRANSITIONS,
        initial=State.IDLE,
        auto_transitions=False,
        graph_engine="mermaid",
    )
    source: str = model.get_graph().draw(None)  # type: ignore[attr-defined]
    lines = [line.rstrip() for line in source.splitlines()]
    # Keep the states and arrows; drop the title block and the colour classes.
    start = lines.index("stateDiagram-v2")
    keep = [ln for ln in lines[start:] if ln and "classDef" not in ln and "Class " not in ln]
    return "\n".join(keep) + "\n"


__all__ = ["mermaid"]


if __name__ == "__main__":  # pragma: no cover
    print(mermaid(), end="")
