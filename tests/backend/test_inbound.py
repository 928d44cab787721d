"""Inbound webhooks: signature checks and payload mapping."""

from __future__ import annotations

import json
import time

import pytest

from backend.contacts.normalize import InvalidValue
from backend.inbound import SourceMapping, sign, to_track, verify

SECRET = "s3cret-s3cret"
BODY = json.dumps(
    {
        "id": "evt_9",
        "type": "order.paid",
        "customer": {"email": "k@example.com"},
        "data": {"total": 990},
    }
).encode()


def test_a_fresh_signature_verifies_and_a_tampered_or_old_one_does_not() -> None:
    now = time.time()
    good = sign(SECRET, int(now), BODY)
    assert verify(SECRET, {"x-touchflow-signature": good}, BODY, now)
    assert not verify(SECRET, {"x-touchflow-signature": good}, BODY + b" ", now)
    assert not verify("other-secret", {"x-touchflow-signature": good}, BODY, now)
    old = sign(SECRET, int(now) - 3600, BODY)
    assert not verify(SECRET, {"x-touchflow-signature": old}, BODY, now)
    assert not verify(SECRET, {"x-touchflow-signature": "t=abc,v1=00"}, BODY, now)


def test_bearer_secret_is_accepted_for_simple_senders() -> None:
    assert verify(SECRET, {"authorization": f"Bearer {SECRET}"}, BODY, time.time())
    assert not verify(SECRET, {"authorization": "Bearer wrong"}, BODY, time.time())
    assert not verify(SECRET, {}, BODY, time.time())


def test_mapping_picks_type_customer_properties_and_key() -> None:
    mapping = SourceMapping(
        event_type="$.type", email="$.customer.email", properties="$.data", idempotency_key="$.id"
    )
    track = to_track(mapping, json.loads(BODY), source_id=7)
    assert track.type == "order.paid"
    assert track.email == "k@example.com"
    assert track.properties == {"total": 990}
    assert track.idempotency_key == "source:7:evt_9"


def test_a_fixed_event_type_and_missing_customer_are_handled() -> None:
    mapping = SourceMapping(event_type="crm.deal_won", external_id="$.deal.contact_id")
    track = to_track(mapping, {"deal": {"contact_id": 42}}, source_id=1)
    assert (track.type, track.external_id) == ("crm.deal_won", "42")
    with pytest.raises(InvalidValue, match="whose event"):
        to_track(mapping, {"deal": {}}, source_id=1)
    with pytest.raises(InvalidValue, match="no event type"):
        to_track(SourceMapping(event_type="$.kind"), {"deal": {}}, source_id=1)
