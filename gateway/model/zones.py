"""Names of time zones as a person in the agreements' states reads them: «Москва, UTC+3».

A time on a page means nothing without its zone: the same moment is 08:19 in Moscow and 10:19 in
Almaty. The node's zone is its configured IANA name (``[node] timezone``); this table gives its
Russian name, and :func:`zone_label` adds the offset in force at the moment shown (it changes
with the seasons in zones that have them).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from types import MappingProxyType

ZONE_NAMES_RU: Mapping[str, str] = MappingProxyType(
    {
        "UTC": "UTC",
        "Etc/UTC": "UTC",
        "Europe/Moscow": "Москва",
        "Europe/Kaliningrad": "Калининград",
        "Europe/Samara": "Самара",
        "Asia/Yekaterinburg": "Екатеринбург",
        "Asia/Omsk": "Омск",
        "Asia/Novosibirsk": "Новосибирск",
        "Asia/Krasnoyarsk": "Красноярск",
        "Asia/Irkutsk": "Иркутск",
        "Asia/Yakutsk": "Якутск",
        "Asia/Vladivostok": "Владивосток",
        "Asia/Magadan": "Магадан",
        "Asia/Kamchatka": "Петропавловск-Камчатский",
        "Asia/Almaty": "Алматы",
        "Asia/Qostanay": "Костанай",
        "Asia/Aqtobe": "Актобе",
        "Asia/Aqtau": "Актау",
        "Asia/Atyrau": "Атырау",
        "Asia/Oral": "Уральск",
        "Asia/Qyzylorda": "Кызылорда",
        "Europe/Minsk": "Минск",
        "Asia/Bishkek": "Бишкек",
        "Asia/Tashkent": "Ташкент",
        "Asia/Dushanbe": "Душанбе",
        "Asia/Ashgabat": "Ашхабад",
        "Asia/Yerevan": "Ереван",
        "Asia/Baku": "Баку",
        "Europe/Chisinau": "Кишинёв",
    }
)
"""Russian names of the IANA zones of the agreements' states; another zone shows its IANA name."""


def zone_name_ru(iana: str) -> str:
    """The Russian name of an IANA zone, or the IANA name itself."""
    return ZONE_NAMES_RU.get(iana, iana)


def utc_offset(moment: datetime) -> str:
    """``UTC+3``, ``UTC-2:30``, ``UTC`` for an aware moment (its own offset)."""
    offset = moment.utcoffset()
    if not offset:
        return "UTC"
    minutes = int(offset.total_seconds()) // 60
    sign = "+" if minutes >= 0 else "-"
    hours, rest = divmod(abs(minutes), 60)
    return f"UTC{sign}{hours}" + (f":{rest:02d}" if rest else "")


def zone_label(zone_name: str, moment: datetime) -> str:
    """«Москва, UTC+3»: the zone's name and the offset in force at ``moment`` (aware)."""
    offset = utc_offset(moment)
    return offset if zone_name in ("UTC", offset) else f"{zone_name}, {offset}"
