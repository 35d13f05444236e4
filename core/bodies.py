"""Safe body parsing: JSON or XML sniffed from the first byte, never from Content-Type."""
from __future__ import annotations

import json
from typing import Any
from xml.parsers import expat
from xml.parsers.expat import ExpatError

import xmltodict

from core.errors import BadRequest


class _Declaration(ValueError):
    pass


def _refuse_declaration(*_args: Any) -> None:
    raise _Declaration()


class _Expat:
    """pyexpat for xmltodict, refusing a DOCTYPE where the parser meets one (an ENTITY can only sit
    inside a DOCTYPE). Not a byte search: "<!DOCTYPE" typed by a user arrives inside CDATA."""

    @staticmethod
    def ParserCreate(*args: Any, **kwargs: Any) -> Any:
        parser = expat.ParserCreate(*args, **kwargs)
        parser.StartDoctypeDeclHandler = _refuse_declaration
        return parser


def parse_xml(body: bytes) -> dict[str, Any]:
    """Parse an XML document into {root: {...}}; refuse DTDs and entities (XXE, billion laughs)."""
    try:
        parsed = xmltodict.parse(body, disable_entities=True, expat=_Expat)
    except _Declaration:
        raise BadRequest("XML with a DOCTYPE or ENTITY declaration is refused") from None
    except (ExpatError, ValueError, LookupError) as exc:  # LookupError: an unknown declared encoding
        raise BadRequest(f"malformed XML: {exc}") from None
    if not isinstance(parsed, dict) or len(parsed) != 1:
        raise BadRequest("XML must have one root element")
    return parsed


def parse_json_object(body: bytes) -> dict[str, Any]:
    try:
        value = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:  # RecursionError: absurdly deep nesting
        raise BadRequest(f"malformed JSON: {exc}") from None
    if not isinstance(value, dict):
        raise BadRequest("the JSON body must be an object")
    try:  # a lone surrogate ("\ud800") is valid JSON but no database can store it
        json.dumps(value, ensure_ascii=False).encode()
    except UnicodeEncodeError:
        raise BadRequest("the JSON body holds text that is not valid Unicode") from None
    return value


def sniff(body: bytes) -> dict[str, Any]:
    """A JSON object, or the fields under the XML root element."""
    stripped = body.lstrip(b"\xef\xbb\xbf \t\r\n")
    if stripped.startswith(b"{"):
        return parse_json_object(stripped)
    if stripped.startswith(b"<"):
        root = next(iter(parse_xml(stripped).values()))
        return root if isinstance(root, dict) else {}
    raise BadRequest("the body is neither JSON nor XML")
