"""Safe body parsing: JSON or XML sniffed from the first byte, never from Content-Type."""
from __future__ import annotations

import json
from typing import Any
from xml.parsers import expat
from xml.parsers.expat import ExpatError

import xmltodict

from core.errors import BadRequest

MAX_XML_DEPTH = 16  # pushes and desk callbacks nest 3 or 4 deep
MAX_XML_ELEMENTS = 4096  # and hold a few dozen elements


class _Declaration(ValueError):
    pass


class _Unbounded(ValueError):
    pass


def _refuse_declaration(*_args: Any) -> None:
    raise _Declaration()


class _GuardedParser:
    """An expat parser that stops at the first element past MAX_XML_DEPTH or MAX_XML_ELEMENTS, so a
    hostile body costs microseconds, not a tree of a hundred thousand levels. xmltodict sets its
    handlers after creating the parser: the element handlers it sets are wrapped on the way in."""

    def __init__(self, parser: Any) -> None:
        object.__setattr__(self, "_parser", parser)
        object.__setattr__(self, "_depth", 0)
        object.__setattr__(self, "_count", 0)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._parser, name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "StartElementHandler":
            value = self._entering(value)
        elif name == "EndElementHandler":
            value = self._leaving(value)
        setattr(self._parser, name, value)

    def _entering(self, handler: Any) -> Any:
        def start(*args: Any) -> Any:
            depth, count = self._depth + 1, self._count + 1
            if depth > MAX_XML_DEPTH or count > MAX_XML_ELEMENTS:
                raise _Unbounded()
            object.__setattr__(self, "_depth", depth)
            object.__setattr__(self, "_count", count)
            return handler(*args)
        return start

    def _leaving(self, handler: Any) -> Any:
        def end(*args: Any) -> Any:
            object.__setattr__(self, "_depth", self._depth - 1)
            return handler(*args)
        return end


class _Expat:
    """pyexpat for xmltodict: bounded (above), and refusing a DOCTYPE where the parser meets one (an
    ENTITY can only sit inside a DOCTYPE). Not a byte search: "<!DOCTYPE" typed by a user arrives inside
    CDATA."""

    @staticmethod
    def ParserCreate(*args: Any, **kwargs: Any) -> Any:
        parser = expat.ParserCreate(*args, **kwargs)
        parser.StartDoctypeDeclHandler = _refuse_declaration
        return _GuardedParser(parser)


def parse_xml(body: bytes) -> dict[str, Any]:
    """Parse an XML document into {root: {...}}; refuse DTDs and entities (XXE, billion laughs)."""
    try:
        parsed = xmltodict.parse(body, disable_entities=True, expat=_Expat)
    except _Declaration:
        raise BadRequest("XML with a DOCTYPE or ENTITY declaration is refused") from None
    except _Unbounded:
        raise BadRequest(f"XML nested deeper than {MAX_XML_DEPTH} or with over {MAX_XML_ELEMENTS} elements") from None
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
