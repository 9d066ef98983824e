"""The consultation documents read in Russian in their PDF rendition: the labels and code names
come from gateway/xml/labels.py, the title from the profile (CIS Art. 13, 15; SC Art. 9.2)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.render.rendition import render_pdf
from gateway.schemas import VALID_EXAMPLES_DIR
from tests.render.conftest import AT
from tests.render.pdftools import page_texts, squeeze, write


@pytest.mark.parametrize(
    ("example", "expected"),
    [
        (
            "cis-enforcement.ConsultationRequest.xml",
            [
                "Предложение о проведении консультаций",
                "Предмет консультаций",
                "до отложения исполнения или определения условий (ст. 15)",
                "Предлагаемое условие",
            ],
        ),
        (
            "ru-kz-supreme-courts.ConsultationRequest.xml",
            [
                "Предполагаемые расходы",
                "Состав расходов",
                "существенные расходы на исполнение (ст. 9.2)",
            ],
        ),
        (
            "ru-kz-supreme-courts.ConsultationRecord.xml",
            [
                "Запись о проведённых консультациях",
                "Способ проведения",
                "по телефону",
                "Итоги",
                "расходы покрывает запрашивающая Сторона",
            ],
        ),
        (
            "ru-kz-supreme-courts.ConsultationAnswer.xml",
            [
                "Ответ в ходе консультаций",
                "Порядок покрытия расходов",
                "расходы распределяются между Сторонами",
                "Условия покрытия расходов",
            ],
        ),
    ],
)
def test_consultations_render_with_russian_labels(
    tmp_path: Path, example: str, expected: list[str]
) -> None:
    pdf = render_pdf((VALID_EXAMPLES_DIR / example).read_bytes(), generated_at=AT)
    text = squeeze("\n".join(page_texts(write(tmp_path, "c.pdf", pdf))))
    for label in expected:
        assert squeeze(label) in text
