"""A small HTML tree for tests (stdlib html.parser) with simple CSS selectors:
``tag``, ``#id``, ``.class``, ``[attr]``, ``[attr=value]``, compounds of these, and the
descendant combinator (space)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from html.parser import HTMLParser

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
_SIMPLE = re.compile(r"([a-zA-Z][\w-]*)|#([\w-]+)|\.([\w\-\u00c0-\u024f]+)"
                     r"|\[([\w-]+)(?:=\"?([^\]\"]*)\"?)?\]")


@dataclass
class Node:
    tag: str
    attrs: dict[str, str] = field(default_factory=dict)
    children: list[Node | str] = field(default_factory=list)
    parent: Node | None = None

    @property
    def classes(self) -> set[str]:
        return set(self.attrs.get("class", "").split())

    @property
    def text(self) -> str:
        return "".join(c if isinstance(c, str) else c.text for c in self.children)

    @property
    def clean_text(self) -> str:
        """The text with whitespace (also no-break spaces) collapsed to single spaces."""
        return " ".join(self.text.split())

    def iter(self):
        for c in self.children:
            if isinstance(c, Node):
                yield c
                yield from c.iter()

    def _matches(self, compound: str) -> bool:
        pos = 0
        for m in _SIMPLE.finditer(compound):
            if m.start() != pos:
                raise ValueError(f"unsupported selector {compound!r}")
            pos = m.end()
            tag, id_, cls, attr, value = m.groups()
            if tag and self.tag != tag.lower():
                return False
            if id_ and self.attrs.get("id") != id_:
                return False
            if cls and cls not in self.classes:
                return False
            if attr and (attr not in self.attrs or (value is not None and self.attrs[attr] != value)):
                return False
        if pos != len(compound):
            raise ValueError(f"unsupported selector {compound!r}")
        return True

    def select(self, selector: str) -> list[Node]:
        parts = selector.split()
        found = [n for n in self.iter() if n._matches(parts[-1])]
        out = []
        for n in found:
            ancestors, ok = n.parent, True
            for part in reversed(parts[:-1]):
                while ancestors is not None and not ancestors._matches(part):
                    ancestors = ancestors.parent
                if ancestors is None:
                    ok = False
                    break
                ancestors = ancestors.parent
            if ok:
                out.append(n)
        return out

    def next_element(self) -> Node:
        """The next sibling element (``dd`` after its ``dt``)."""
        siblings = [c for c in self.parent.children if isinstance(c, Node)]
        return siblings[siblings.index(self) + 1]

    def one(self, selector: str) -> Node:
        found = self.select(selector)
        assert len(found) == 1, f"{selector}: {len(found)} matches"
        return found[0]


class _Builder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#document")
        self.current = self.root

    def handle_starttag(self, tag, attrs):
        node = Node(tag, {k: v or "" for k, v in attrs}, parent=self.current)
        self.current.children.append(node)
        if tag not in VOID:
            self.current = node

    def handle_startendtag(self, tag, attrs):
        self.current.children.append(Node(tag, {k: v or "" for k, v in attrs}, parent=self.current))

    def handle_endtag(self, tag):
        node = self.current
        while node is not None and node.tag != tag:
            node = node.parent
        if node is not None and node.parent is not None:
            self.current = node.parent

    def handle_data(self, data):
        self.current.children.append(data)


def parse(html: str) -> Node:
    builder = _Builder()
    builder.feed(html)
    builder.close()
    return builder.root
