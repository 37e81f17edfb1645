"""HITL_API_KEYS: the syntax, its errors (which never show a key), the principal of a request,
and keys kept out of logs and responses."""

from __future__ import annotations

import logging

import httpx
import pytest
from pydantic import ValidationError

from app.api.auth import ANONYMOUS, Principal, authenticate
from app.config import ApiKey, Settings, parse_api_keys
from app.errors import AuthenticationError
from tests.access.conftest import ACME, ACME_KEY, GLOBEX_KEY, OPERATOR_KEY, start


def test_the_three_forms() -> None:
    keys = parse_api_keys(" plain-key-0001 , ci=ci-key-000002,acme-bot:acme=acme-key-03 ,")
    assert [(k.name, k.tenant, k.key) for k in keys] == [
        ("key-1", None, b"plain-key-0001"),
        ("ci", None, b"ci-key-000002"),
        ("acme-bot", "acme", b"acme-key-03"),
    ]
    assert parse_api_keys("") == ()


def test_a_key_may_contain_equals_signs_once_named() -> None:
    (key,) = parse_api_keys("ops=c2VjcmV0LXNlY3JldA==")
    assert (key.name, key.key) == ("ops", b"c2VjcmV0LXNlY3JldA==")


def test_the_same_name_may_hold_two_keys_for_rotation() -> None:
    keys = parse_api_keys("ops=old-key-00001,ops=new-key-00001")
    assert [k.name for k in keys] == ["ops", "ops"]


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("c2VjcmV0LXNlY3JldA==", "shorter than 8"),  # an unnamed base64 key: name it
        ("short", "shorter than 8"),
        ("bad name=secret-key-001", "NAME:TENANT=KEY"),
        ("ops:=secret-key-001", "NAME:TENANT=KEY"),
        (":acme=secret-key-001", "NAME:TENANT=KEY"),
        ("a=secret-key-001,b=secret-key-001", "listed twice"),
        ("x:acme=secret-key-001,x:globex=secret-key-002", "two tenants"),
    ],
)
def test_bad_entries_fail_at_startup_without_showing_the_key(raw: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason) as caught:
        parse_api_keys(raw)
    assert "secret" not in str(caught.value) and "c2Vj" not in str(caught.value)
    with pytest.raises(ValidationError) as invalid:
        Settings(_env_file=None, api_keys=raw)  # type: ignore[call-arg]
    assert "secret" not in str(invalid.value) and "c2Vj" not in str(invalid.value)


def test_keys_never_show_in_reprs() -> None:
    settings = Settings(_env_file=None, api_keys=f"acme-bot:acme={ACME_KEY}")  # type: ignore[call-arg]
    (key,) = settings.api_key_entries
    assert ACME_KEY not in repr(key) and ACME_KEY not in repr(settings)
    assert key == ApiKey("acme-bot", "acme", ACME_KEY.encode())


def test_authenticate_finds_the_principal_of_each_key() -> None:
    keys = parse_api_keys(
        f"acme-bot:acme={ACME_KEY},globex-bot:globex={GLOBEX_KEY},ops={OPERATOR_KEY}"
    )
    assert authenticate(keys, f"Bearer {GLOBEX_KEY}") == Principal("globex-bot", "globex")
    assert authenticate(keys, f"bearer {OPERATOR_KEY}") == Principal("ops", None)
    assert authenticate((), "") == ANONYMOUS
    for header in ("", f"Basic {ACME_KEY}", "Bearer ", f"Bearer {ACME_KEY}x", ACME_KEY[:-1]):
        with pytest.raises(AuthenticationError):
            authenticate(keys, header)


def test_audit_names() -> None:
    assert Principal("acme-bot", "acme").audit_name("mallory") == "acme-bot"
    assert ANONYMOUS.audit_name("ada") == "ada"
    assert ANONYMOUS.audit_name(None) is None


async def test_keys_stay_out_of_logs_and_responses(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    thread = await start(client, ACME)
    bodies = [
        await client.get("/threads", headers={"Authorization": "Bearer wrong-key-000000001"}),
        await client.get(f"/threads/{thread['thread_id']}", headers=ACME),
        await client.post("/threads", json={"graph": "nope"}, headers=ACME),
        await client.post(
            f"/threads/{thread['thread_id']}/resume", json={"value": 1, "extra": 2}, headers=ACME
        ),
    ]
    for key in (ACME_KEY, "wrong-key-000000001"):
        assert key not in caplog.text
        assert all(key not in r.text and key not in str(r.headers) for r in bodies)
