"""Whose console this is: the node's body and the zone its pages show times in."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from gateway.model.zones import zone_label, zone_name_ru


@dataclass(frozen=True, slots=True)
class NodeIdentity:
    """Whose console this is: shown on sign-in and on every page, so four consoles of four
    bodies never look alike, and the zone every time on the pages is shown in."""

    body_id: str
    body_name: str
    """The body's Russian name from the directory."""
    timezone: tzinfo
    """The node's zone (``[node] timezone``)."""
    zone_name: str
    """Its Russian name («Москва»; :func:`gateway.model.zones.zone_name_ru`)."""

    @classmethod
    def of(cls, body_id: str, body_name: str, iana_zone: str) -> NodeIdentity:
        return cls(body_id, body_name, ZoneInfo(iana_zone), zone_name_ru(iana_zone))

    def zone_label(self, moment: datetime) -> str:
        """«Москва, UTC+3» at ``moment``."""
        return zone_label(self.zone_name, moment.astimezone(self.timezone))


def node_identity(node: Any) -> NodeIdentity:
    """The node's body (its Russian name as the directory publishes it) and configured zone."""
    body_id = node.body_id
    published = next((b for b in node.directory.bodies if b.id == body_id), None)
    name = published.name("ru") if published is not None else body_id
    return NodeIdentity.of(body_id, name, node.config.node.timezone)
