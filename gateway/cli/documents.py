"""Document commands: ``gateway convert`` (JSON → XML) and ``gateway validate`` (XML), over
:mod:`gateway.app.documents`.

Exit codes (docs/operations.md): 0 — valid; 1 — the document is invalid, or not JSON at all
(problems are printed with their codes); 3 — the file cannot be read (missing, no permission).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gateway.cli.errors import ExitCode, fail

if TYPE_CHECKING:  # the XML stack loads when a command runs, not for ``gateway --help``
    from gateway.model.problems import Problem

EXIT_VALID = ExitCode.OK
EXIT_INVALID = ExitCode.REFUSED
EXIT_UNREADABLE = ExitCode.UNAVAILABLE
"""A file that cannot be read is a missing dependency (exit code 3), like every command's."""


def register(subparsers: Any) -> None:
    convert = subparsers.add_parser(
        "convert",
        help="JSON → XML по схеме (печатает XML)",
        description="Преобразует документ JSON (формат docs/documents.md) в XML-конверт, "
        "проверяет его по схеме и правилам и печатает XML.",
    )
    convert.add_argument(
        "kind", metavar="KIND", help="вид сообщения: Request или cis-enforcement:Request"
    )
    convert.add_argument("file", metavar="FILE.json", type=Path)
    convert.add_argument("--json", action="store_true", help="ошибки в машиночитаемом виде (JSON)")
    convert.set_defaults(handler=_convert)

    check = subparsers.add_parser(
        "validate",
        help="проверить XML-документ (схема и правила соглашений)",
        description="Проверяет XML-конверт: разбор, схема, правила содержания. "
        "Код выхода: 0 — документ корректен, 1 — есть ошибки, 3 — файл не прочитать.",
    )
    check.add_argument("file", metavar="FILE.xml", type=Path)
    check.add_argument("--json", action="store_true", help="результат в машиночитаемом виде (JSON)")
    check.set_defaults(handler=_validate)


def _read(path: Path, as_json: bool, limit: int) -> bytes | None:
    """At most one byte more than ``limit``: enough to tell the file is too large."""
    try:
        with path.open("rb") as stream:
            return stream.read(limit + 1)
    except OSError as error:
        _report_unreadable(path, str(error), as_json)
        return None


def _report_unreadable(
    path: Path, reason: str, as_json: bool, code: str = "FILE_UNREADABLE"
) -> None:
    if as_json:
        print(
            json.dumps(
                {"file": str(path), "readable": False, "error": reason, "code": code},
                ensure_ascii=False,
            )
        )
    else:
        fail(f"не удалось прочитать файл {path}: {reason}", code)


def _convert(args: argparse.Namespace) -> int:
    from gateway.app.documents import convert
    from gateway.model.limits import MAX_JSON_BYTES
    from gateway.model.problems import Problem

    data = _read(args.file, args.json, MAX_JSON_BYTES)
    if data is None:
        return EXIT_UNREADABLE
    if len(data) > MAX_JSON_BYTES:
        too_large = Problem(
            code="JSON_TOO_LARGE",
            path="/",
            message_ru=f"Файл JSON больше {MAX_JSON_BYTES} байт: такой документ не пройдёт "
            "ограничение на размер XML.",
            message_en=f"JSON file over {MAX_JSON_BYTES} bytes",
            remedy_ru="Передайте файлы вложениями рядом с документом (POST /api/v1/attachments, "
            "docs/attachments.md), а не внутри JSON.",
        )
        return _print_problems(args.file, (too_large,), args.json, stream=sys.stderr)
    try:
        document = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        _report_unreadable(args.file, f"не JSON: {error}", args.json, "JSON_SYNTAX")
        return EXIT_INVALID
    result = convert(args.kind, document)
    if result.xml is None:
        return _print_problems(args.file, result.problems, args.json, stream=sys.stderr)
    sys.stdout.buffer.write(result.xml)
    sys.stdout.flush()
    return EXIT_VALID


def _validate(args: argparse.Namespace) -> int:
    from gateway.app.documents import check_bytes
    from gateway.model.limits import MAX_XML_BYTES

    data = _read(args.file, args.json, MAX_XML_BYTES)  # the parser refuses more, naming it
    if data is None:
        return EXIT_UNREADABLE
    result = check_bytes(data)
    if result.valid and not result.problems:
        if args.json:
            print(json.dumps({"file": str(args.file), "valid": True, "problems": []}))
        else:
            header = result.header
            what = f" ({header.agreement}:{header.kind})" if header else ""
            print(f"{args.file}: документ корректен{what}.")
        return EXIT_VALID
    code = EXIT_VALID if result.valid else EXIT_INVALID
    _print_problems(args.file, result.problems, args.json, stream=sys.stdout, valid=result.valid)
    return code


def _print_problems(
    path: Path,
    problems: tuple[Problem, ...],
    as_json: bool,
    *,
    stream: Any,
    valid: bool = False,
) -> int:
    if as_json:
        payload = {"file": str(path), "valid": valid, "problems": [p.to_json() for p in problems]}
        print(json.dumps(payload, ensure_ascii=False, indent=2), file=stream)
        return EXIT_VALID if valid else EXIT_INVALID
    verdict = "предупреждения" if valid else "документ отклонён"
    print(f"{path}: {verdict} ({len(problems)}):", file=stream)
    for problem in problems:
        article = f" [{problem.article}]" if problem.article else ""
        print(f"  {problem.code}{article} {problem.path}", file=stream)
        print(f"    {problem.message_ru}", file=stream)
        if problem.remedy_ru:
            print(f"    Что сделать: {problem.remedy_ru}", file=stream)
    return EXIT_VALID if valid else EXIT_INVALID
