"""Graphs drawn on the server as SVG: the DAG of repos and pipelines, and a file's provenance.

A layered layout (each node one column right of the furthest node feeding it, rows in name order)
is enough for pipeline graphs, which are shallow and narrow; drawing them here keeps the page free
of a JavaScript graph library, and every node is a plain link a browser (and a test) can click.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html import escape

NODE_W = 190
NODE_H = 46
GAP_X = 70
GAP_Y = 22
PAD = 16


@dataclass
class Node:
    """One box: `kind` styles it (repo, pipeline, file, datum), `state` colours it."""

    id: str
    label: str
    href: str
    kind: str
    detail: str = ""
    state: str = ""
    badge: tuple[str, str] | None = None
    """A second link inside the box: (text, href), e.g. a failed datum's log."""
    x: int = 0
    y: int = 0


@dataclass
class Graph:
    nodes: dict[str, Node] = field(default_factory=dict)
    edges: list[tuple[str, str]] = field(default_factory=list)

    def add(self, node: Node) -> None:
        self.nodes.setdefault(node.id, node)

    def link(self, source: str, target: str) -> None:
        if (source, target) not in self.edges:
            self.edges.append((source, target))


def _layers(graph: Graph) -> dict[str, int]:
    """Each node's column: one past the furthest of the nodes feeding it (0 for sources)."""
    feeding: dict[str, list[str]] = {n: [] for n in graph.nodes}
    for source, target in graph.edges:
        feeding[target].append(source)
    column: dict[str, int] = {}

    def place(node: str, path: frozenset[str]) -> int:
        if node not in column:
            before = [place(f, path | {node}) for f in feeding[node] if f not in path]
            column[node] = 1 + max(before) if before else 0
        return column[node]

    for node in graph.nodes:
        place(node, frozenset())
    return column


def layout(graph: Graph) -> tuple[int, int]:
    """Set every node's position; the drawing's width and height."""
    columns: dict[int, list[Node]] = {}
    for node_id, col in _layers(graph).items():
        columns.setdefault(col, []).append(graph.nodes[node_id])
    rows = 0
    for col, nodes in columns.items():
        nodes.sort(key=lambda n: (n.kind != "repo", n.label))
        for row, node in enumerate(nodes):
            node.x = PAD + col * (NODE_W + GAP_X)
            node.y = PAD + row * (NODE_H + GAP_Y)
        rows = max(rows, len(nodes))
    width = PAD * 2 + max(len(columns), 1) * (NODE_W + GAP_X) - GAP_X
    height = PAD * 2 + max(rows, 1) * (NODE_H + GAP_Y) - GAP_Y
    return width, height


def _route(a: Node, b: Node) -> str:
    """An edge from a's right side to b's left side. One spanning columns runs along the gap
    below a's row, so it never crosses the boxes of the columns between."""
    x1, y1, x2, y2 = a.x + NODE_W, a.y + NODE_H / 2, b.x, b.y + NODE_H / 2
    if x2 - x1 <= GAP_X:
        bend = max((x2 - x1) / 2, 20)
        return f"M {x1} {y1} C {x1 + bend} {y1}, {x2 - bend} {y2}, {x2 - 2} {y2}"
    lane = a.y + NODE_H + GAP_Y / 2
    half = GAP_X / 2
    return (
        f"M {x1} {y1} C {x1 + half} {y1}, {x1 + half} {lane}, {x1 + GAP_X} {lane} "
        f"L {x2 - GAP_X} {lane} C {x2 - half} {lane}, {x2 - half} {y2}, {x2 - 2} {y2}"
    )


def _fit(text: str, chars: int = 26) -> str:
    return text if len(text) <= chars else text[: chars - 1] + "…"


def render(graph: Graph, title: str) -> str:
    """The graph as an inline SVG element (links are SVG <a> elements)."""
    width, height = layout(graph)
    parts = [
        f'<svg class="graph" role="img" aria-label="{escape(title)}" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
        'orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" class="arrowhead"/></marker></defs>',
    ]
    for source, target in graph.edges:
        parts.append(
            f'<path class="edge" d="{_route(graph.nodes[source], graph.nodes[target])}" marker-end="url(#arrow)"/>'
        )
    for node in graph.nodes.values():
        classes = f"node {node.kind}" + (f" state-{node.state}" if node.state else "")
        parts.append(f'<g class="{classes}" data-node="{escape(node.id)}">')
        parts.append(f'<a href="{escape(node.href)}"><title>{escape(node.label)}</title>')
        radius = 14 if node.kind in ("repo", "file") else 4
        parts.append(f'<rect class="box" x="{node.x}" y="{node.y}" width="{NODE_W}" height="{NODE_H}" rx="{radius}"/>')
        parts.append(f'<text class="label" x="{node.x + 10}" y="{node.y + 19}">{escape(_fit(node.label))}</text>')
        parts.append("</a>")
        if node.detail:
            parts.append(
                f'<text class="detail" x="{node.x + 10}" y="{node.y + 36}">{escape(_fit(node.detail, 22))}</text>'
            )
        if node.badge is not None:
            text, href = node.badge
            parts.append(
                f'<a class="badge" href="{escape(href)}"><text x="{node.x + NODE_W - 10}" y="{node.y + 36}" '
                f'text-anchor="end">{escape(text)}</text></a>'
            )
        parts.append("</g>")
    parts.append("</svg>")
    return "".join(parts)
