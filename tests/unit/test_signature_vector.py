"""tests/fixtures/webhook/signature-vector.json (written by make_signature_vector.py beside it, from the
documented scheme) against the relay's signing, the reference receiver's and the fake desk's."""
from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

from core import signing
from core.errors import Unauthorized
from tests.conftest import fixture_json
from tests.fakes import webhook as fake_desk

VECTOR = fixture_json("webhook/signature-vector.json")
BODY = VECTOR["body"].encode("utf-8")
NOW = float(VECTOR["timestamp"])


def reference_receiver() -> ModuleType:
    path = Path(__file__).resolve().parents[2] / "examples" / "webhook-receiver" / "receiver.py"
    spec = importlib.util.spec_from_file_location("reference_receiver", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_vector_is_the_bytes_it_names():
    assert hashlib.sha256(BODY).hexdigest() == VECTOR["body_sha256"]


def test_the_relay_signs_the_vector_as_expected():
    assert signing.sign(VECTOR["secret"], VECTOR["timestamp"], BODY) == VECTOR["signature"]


def test_the_relay_accepts_the_vector_within_five_minutes_and_not_after():
    signing.verify(VECTOR["secret"], VECTOR["timestamp"], VECTOR["signature"], BODY, NOW + 300)
    with pytest.raises(Unauthorized):
        signing.verify(VECTOR["secret"], VECTOR["timestamp"], VECTOR["signature"], BODY, NOW + 301)


@pytest.mark.parametrize("sign", [reference_receiver().sign, fake_desk.sign], ids=["reference-receiver", "fake-desk"])
def test_receivers_sign_the_vector_as_expected(sign):
    assert sign(VECTOR["secret"], VECTOR["timestamp"], BODY) == VECTOR["signature"]


def test_the_reference_receiver_checks_the_vector_and_its_window():
    receiver = reference_receiver()
    assert receiver.verify(VECTOR["secret"], VECTOR["timestamp"], VECTOR["signature"], BODY, NOW)
    assert not receiver.verify(VECTOR["secret"], VECTOR["timestamp"], VECTOR["signature"], BODY, NOW + 301)
    assert not receiver.verify(VECTOR["secret"], VECTOR["timestamp"], VECTOR["signature"], BODY + b" ", NOW)


def test_the_webhook_doc_quotes_the_vector_as_it_is():
    doc = (Path(__file__).resolve().parents[2] / "docs" / "webhook-desk.md").read_text()
    for name in ("secret", "timestamp", "body", "signature"):
        assert VECTOR[name] in doc, name
