"""Graphs drawn on the server as SVG: the DAG of repos and pipelines, and a file's provenance.

A layered layout (each node one layer past the furthest node feeding it, each layer ordered by
where its feeders sit) is enough for pipeline graphs; drawing them here keeps the page free of a
JavaScript graph library, and every node is a plain link a browser (and a test) can click. Layers
run left to right, or top to bottom when that fits a landscape page better (a long chain of
pipelines); the console's script then fits the drawing to its box, and pans and zooms it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import Enum
from html import escape

NODE_W = 190
NODE_H = 46
GAP_X = 70
GAP_Y = 22
"""Left to right: between layers, and between the nodes of one layer."""
DOWN_GAP_X = 24
DOWN_GAP_Y = 44
"""Top to bottom: between the nodes of one layer, and between layers."""
PAD = 16
PAGE = (1240, 560)
"""The box a drawing is meant to fit at 1280x800 (the console's graph box): `Direction.AUTO`
takes the direction that shows the drawing biggest in it."""


class Direction(Enum):
    RIGHT = "right"
    DOWN = "down"
    AUTO = "auto"


@dataclass
class Node:
    """One box: `kind` styles it (repo, output (a pipeline's repo), pipeline, file, datum), `state`
    colours it."""

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
    """Each node's layer: one past the furthest of the nodes feeding it (0 for sources)."""
    feeding: dict[str, list[str]] = {n: [] for n in graph.nodes}
    for source, target in graph.edges:
        feeding[target].append(source)
    layer: dict[str, int] = {}

    def place(node: str, path: frozenset[str]) -> int:
        if node not in layer:
            before = [place(f, path | {node}) for f in feeding[node] if f not in path]
            layer[node] = 1 + max(before) if before else 0
        return layer[node]

    for node in graph.nodes:
        place(node, frozenset())
    return layer


def _ordered(graph: Graph) -> list[list[Node]]:
    """The nodes layer by layer: the first layer in name order (repos first), every later one by
    the mean place of each node's feeders, so a pipeline sits level with its input and its
    output repo level with it (fewer crossing edges than name order)."""
    layers: list[list[Node]] = []
    for node_id, number in _layers(graph).items():
        layers.extend([] for _ in range(number + 1 - len(layers)))
        layers[number].append(graph.nodes[node_id])
    feeding: dict[str, list[str]] = {n: [] for n in graph.nodes}
    for source, target in graph.edges:
        feeding[target].append(source)
    place: dict[str, int] = {}
    for nodes in layers:
        nodes.sort(
            key=lambda node: (_mean(place[f] for f in feeding[node.id] if f in place), node.kind != "repo", node.label)
        )
        place.update((node.id, rank) for rank, node in enumerate(nodes))
    return layers


def _mean(values: Iterable[int]) -> float:
    seen = list(values)
    return sum(seen) / len(seen) if seen else 0.0


def _size(layers: list[list[Node]], direction: Direction) -> tuple[int, int]:
    """The drawing's width and height, its layers running `direction` (RIGHT or DOWN)."""
    deep, wide = max(len(layers), 1), max((len(nodes) for nodes in layers), default=1)
    if direction is Direction.DOWN:
        return (
            PAD * 2 + wide * (NODE_W + DOWN_GAP_X) - DOWN_GAP_X,
            PAD * 2 + deep * (NODE_H + DOWN_GAP_Y) - DOWN_GAP_Y,
        )
    return PAD * 2 + deep * (NODE_W + GAP_X) - GAP_X, PAD * 2 + wide * (NODE_H + GAP_Y) - GAP_Y


def _shown_at(size: tuple[int, int]) -> float:
    """How big a drawing of `size` is shown fitted into `PAGE` (never more than 1)."""
    return min(PAGE[0] / size[0], PAGE[1] / size[1], 1.0)


def layout(graph: Graph, direction: Direction = Direction.RIGHT) -> tuple[int, int, Direction]:
    """Set every node's position; the drawing's width and height, and the direction taken."""
    layers = _ordered(graph)
    if direction is Direction.AUTO:
        down = _shown_at(_size(layers, Direction.DOWN)) > _shown_at(_size(layers, Direction.RIGHT))
        direction = Direction.DOWN if down else Direction.RIGHT
    for number, nodes in enumerate(layers):
        for rank, node in enumerate(nodes):
            if direction is Direction.DOWN:
                node.x, node.y = PAD + rank * (NODE_W + DOWN_GAP_X), PAD + number * (NODE_H + DOWN_GAP_Y)
            else:
                node.x, node.y = PAD + number * (NODE_W + GAP_X), PAD + rank * (NODE_H + GAP_Y)
    return (*_size(layers, direction), direction)


def _route(a: Node, b: Node) -> str:
    """An edge from a's right side to b's left side. One spanning layers runs along the gap
    below a's row, so it never crosses the boxes of the layers between."""
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


def _route_down(a: Node, b: Node) -> str:
    """An edge from a's bottom to b's top; one spanning layers runs along the gap right of a's
    column (the layers share their columns, so no box stands in it)."""
    x1, y1, x2, y2 = a.x + NODE_W / 2, a.y + NODE_H, b.x + NODE_W / 2, b.y
    if y2 - y1 <= DOWN_GAP_Y:
        bend = max((y2 - y1) / 2, 14)
        return f"M {x1} {y1} C {x1} {y1 + bend}, {x2} {y2 - bend}, {x2} {y2 - 2}"
    lane = a.x + NODE_W + DOWN_GAP_X / 2
    half = DOWN_GAP_Y / 2
    return (
        f"M {x1} {y1} C {x1} {y1 + half}, {lane} {y1 + half}, {lane} {y1 + DOWN_GAP_Y} "
        f"L {lane} {y2 - DOWN_GAP_Y} C {lane} {y2 - half}, {x2} {y2 - half}, {x2} {y2 - 2}"
    )


def _fit(text: str, chars: int = 26) -> str:
    return text if len(text) <= chars else text[: chars - 1] + "…"


def render(graph: Graph, title: str, direction: Direction = Direction.RIGHT) -> str:
    """The graph as an inline SVG element (links are SVG <a> elements); `data-width` and
    `data-height` keep the drawing's size for the script that pans and zooms it."""
    width, height, direction = layout(graph, direction)
    route = _route_down if direction is Direction.DOWN else _route
    parts = [
        f'<svg class="graph" role="img" aria-label="{escape(title)}" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" data-width="{width}" data-height="{height}" '
        f'data-direction="{direction.value}" xmlns="http://www.w3.org/2000/svg">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
        'orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" class="arrowhead"/></marker></defs>',
    ]
    for source, target in graph.edges:
        parts.append(
            f'<path class="edge" d="{route(graph.nodes[source], graph.nodes[target])}" marker-end="url(#arrow)"/>'
        )
    for node in graph.nodes.values():
        classes = f"node {node.kind}" + (f" state-{node.state}" if node.state else "")
        parts.append(f'<g class="{classes}" data-node="{escape(node.id)}">')
        parts.append(f'<a href="{escape(node.href)}"><title>{escape(node.label)}</title>')
        radius = 14 if node.kind in ("repo", "output", "file") else 4
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
