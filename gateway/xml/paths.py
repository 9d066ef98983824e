"""Readable paths to elements, as :class:`~gateway.model.problems.Problem` paths carry them.

Namespaces are left out (``/Envelope/Body/Request/Subjects/Assets[2]/Kind``): a person reads
the path next to the JSON, which has no namespaces either. A position is added only where an
element has siblings of the same name.
"""

from __future__ import annotations

from lxml import etree


def local_name(element: etree._Element) -> str:
    """The element's name without its namespace."""
    name: str = etree.QName(element).localname
    return name


def element_path(element: etree._Element) -> str:
    """``/Envelope/Body/…`` path of an element in its tree, positions where names repeat."""
    parts: list[str] = []
    node: etree._Element | None = element
    while node is not None:
        if not isinstance(node.tag, str):  # a comment: describe its parent instead
            node = node.getparent()
            continue
        name = local_name(node)
        parent = node.getparent()
        if parent is not None:
            same = [s for s in parent.iterchildren(node.tag)]
            if len(same) > 1:
                name = f"{name}[{same.index(node) + 1}]"
        parts.append(name)
        node = parent
    return "/" + "/".join(reversed(parts))
