"""What a graph computes, as one digest per value, independent of names and node order: how a
`.ort` file's generator is compared with the one gru-edge derives (runtime.generator_check).

onnxruntime's conversion to the ORT format (exporter.mobile) optimises the graph: it fuses
MatMul + Add into Gemm (node order and intermediate names change), removes Identity nodes
(outputs are renamed), turns Constant nodes into initializers and writes attributes' default
values into nodes. None of that changes what is computed, so each value is described by the
operation that makes it and the descriptions of its inputs: a constant by its bytes, a graph
input by its name (top level) or position (subgraph), a node output by operator, attributes
(defaults dropped), inputs and output index, with Identity transparent, Add's inputs unordered
and Gemm(a, b, c) with unit alpha/beta and no transposes described as Add(MatMul(a, b), c), and
onnxruntime's FusedGemm (such a Gemm and the Sigmoid after it, fused) as Sigmoid of that. A
graph is described by its outputs in order plus every node it holds (so nothing extra runs).
"""

from __future__ import annotations

from collections.abc import Callable

from gru_edge.runtime.generator_spec import Attr, Graph, Node, Tensor

Defaults = Callable[[str], dict[str, Attr]]
UNIT_GEMM = {"alpha": 1.0, "beta": 1.0, "transA": 0, "transB": 0}


def _digest(*parts: object) -> str:
    # Imported here: only `.ort` files are compared by digest, and hashlib (with OpenSSL) is
    # 3.6 MB of every `gru-edge sample`'s peak RSS (measured, issue 15).
    import hashlib

    return hashlib.sha256(repr(parts).encode()).hexdigest()


class Structure:
    """Digests of the values of one graph (and its subgraphs, which see its values)."""

    def __init__(
        self,
        graph: Graph,
        defaults: Defaults,
        outer: Callable[[str], str],
        top_level: bool,
    ):
        self._defaults = defaults
        self._outer = outer
        self._made = {out: (node, i) for node in graph.nodes for i, out in enumerate(node.outputs)}
        self._consts: dict[str, Tensor] = {t.name: t for t in graph.initializers}
        for node in graph.nodes:
            value = node.attrs[0] if len(node.attrs) == 1 else None
            if node.op_type == "Constant" and value is not None and value.kind == "tensor":
                self._consts[node.outputs[0]] = value.value
        self._inputs = {
            info.name: (info.name if top_level else i) for i, info in enumerate(graph.inputs)
        }
        self._memo: dict[str, str] = {}
        self._node_attrs: dict[int, tuple] = {}
        self._graph = graph

    def value(self, name: str) -> str:
        """The digest of a value this graph can see."""
        if name in self._memo:
            return self._memo[name]
        if name == "":
            digest = _digest("absent")
        elif name in self._inputs:
            digest = _digest("input", self._inputs[name])
        elif name in self._consts:
            t = self._consts[name]
            digest = _digest("const", t.elem, tuple(t.dims), t.data)
        elif name in self._made:
            node, index = self._made[name]
            self._memo[name] = _digest("cycle", name)  # a cycle reads as itself: never equal
            digest = self._node_output(node, index)
        else:
            digest = self._outer(name)
        self._memo[name] = digest
        return digest

    def _node_output(self, node: Node, index: int) -> str:
        if node.op_type == "Identity" and len(node.inputs) == 1:
            return self.value(node.inputs[0])
        parts = self._gemm_parts(node)
        if parts:
            return parts[-1]
        inputs = tuple(self.value(n) for n in node.inputs)
        if node.op_type == "Add":
            inputs = tuple(sorted(inputs))
        return _digest(node.op_type, node.domain, self._attrs(node), inputs, index)

    def _gemm_parts(self, node: Node) -> list[str]:
        """A Gemm with unit alpha and beta and no transposes as its MatMul and its Add, and
        onnxruntime's FusedGemm as the same then its activation: each part's digest (the last
        is the node's output), or [] for any other node."""
        fused = node.op_type == "FusedGemm" and node.domain == "com.microsoft"
        if not (node.op_type == "Gemm" or fused) or len(node.inputs) != 3:
            return []
        values = {a.name: a.value for a in node.attrs}
        activation = values.pop("activation", None) if fused else None
        if set(values) - set(UNIT_GEMM) or (fused and not isinstance(activation, bytes)):
            return []
        if any(values.get(k, v) != v for k, v in UNIT_GEMM.items()):
            return []
        a, b, c = (self.value(name) for name in node.inputs)
        parts = [_digest("MatMul", "", (), (a, b), 0)]
        parts.append(_digest("Add", "", (), tuple(sorted((parts[0], c))), 0))
        if fused:
            parts.append(_digest(activation.decode(), "", (), (parts[1],), 0))
        return parts

    def _attrs(self, node: Node) -> tuple:
        # Once per node: an If's three outputs would otherwise digest its branches three times,
        # and so on at every depth.
        key = id(node)
        if key not in self._node_attrs:
            self._node_attrs[key] = self._attrs_of(node)
        return self._node_attrs[key]

    def _attrs_of(self, node: Node) -> tuple:
        implied = self._defaults(node.op_type)
        kept = []
        for attr in sorted(node.attrs, key=lambda a: a.name):
            if implied.get(attr.name) == attr:
                continue
            if attr.kind == "graph":
                kept.append((attr.name, "graph", self.subgraph(attr.value)))
            elif attr.kind == "tensor":
                t = attr.value
                kept.append((attr.name, "tensor", t and (t.elem, tuple(t.dims), t.data)))
            elif attr.kind in ("graphs", "tensors"):
                kept.append((attr.name, attr.kind, "unsupported"))
            else:
                kept.append((attr.name, attr.kind, attr.value))
        return tuple(kept)

    def subgraph(self, graph: Graph) -> str:
        """The digest of a subgraph that sees this graph's values."""
        return Structure(graph, self._defaults, self.value, top_level=False).whole()

    def nodes(self, nodes: list[Node]) -> list[str]:
        """Each node's digests, a Gemm counted as its parts (_gemm_parts), Identity and
        Constant nodes left out, sorted."""
        entries = []
        for node in nodes:
            if node.op_type in ("Identity", "Constant"):
                continue
            # a Gemm's parts count as the nodes they would be: the same entries either way
            entries.extend(_digest(part) for part in self._gemm_parts(node)[:-1])
            entries.append(_digest(*(self.value(out) for out in node.outputs)))
        return sorted(entries)

    def whole(self) -> str:
        """The digest of the graph: its outputs in order and all of its nodes."""
        outputs = tuple(self.value(o.name) for o in self._graph.outputs)
        return _digest("graph", outputs, tuple(self.nodes(self._graph.nodes)))
