"""Standard Webhooks signatures, replay protection, rotation and WEBHOOK_AUTH modes.

The requests are signed by the `standardwebhooks` package, the reference implementation, not by the
service's code.
"""
import base64
import json
import time
from datetime import datetime, timezone

import pytest
from standardwebhooks import Webhook

from image_webhook.config import ConfigError, load_settings
from tests.payloads import COMPLETED, PROGRESS, SECRET, URL, payload

KEY_A = "whsec_" + base64.b64encode(b"A" * 32).decode()
KEY_B = "whsec_" + base64.b64encode(b"B" * 32).decode()


def signed_headers(body, key=KEY_A, message_id="msg_1", at=None):
    """Headers of a request whose raw `body` (bytes) is signed with `key` at time `at` (now)."""
    at = time.time() if at is None else at
    stamp = datetime.fromtimestamp(at, tz=timezone.utc)
    signature = Webhook(key).sign(message_id, stamp, body.decode("utf-8"))
    return {"webhook-id": message_id, "webhook-timestamp": str(int(at)), "webhook-signature": signature,
            "Content-Type": "application/json"}


def raw(body):
    return json.dumps(body).encode()


@pytest.fixture
def signed_client(make_app):
    return make_app(APP_ENV="production", WEBHOOK_SIGNING_SECRET=KEY_A).test_client()


def post(client, body, headers):
    return client.post(URL, data=body, headers=headers)


def test_valid_signature_is_processed(signed_client):
    """A request signed with the configured secret is processed."""
    body = raw(COMPLETED)
    response = post(signed_client, body, signed_headers(body))
    assert response.status_code == 200 and response.get_json()["images_count"] == 1


def test_replayed_message_is_a_duplicate_whatever_its_job(signed_client):
    """The same webhook-id twice is answered 'Job déjà traité', even for a progress notification."""
    body = raw(PROGRESS)
    headers = signed_headers(body, message_id="msg_progress")
    assert post(signed_client, body, headers).get_json()["status"] == "generating"
    assert post(signed_client, body, headers).get_json() == {"success": True, "message": "Job déjà traité"}


def test_rejected_message_can_be_retried_with_the_same_id(make_app):
    """A signed message whose processing fails is not remembered: its retry (same webhook-id) is processed."""
    calls = []

    def flaky(body):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("boom")

    client = make_app(APP_ENV="production", WEBHOOK_SIGNING_SECRET=KEY_A, job_handler=flaky).test_client()
    body = raw(COMPLETED)
    assert post(client, body, signed_headers(body, message_id="msg_retry")).status_code == 500
    assert post(client, body, signed_headers(body, message_id="msg_retry")).get_json()["images_count"] == 1


def _tamper(headers, **changes):
    return {**headers, **changes}


def _cases():
    body = raw(payload(COMPLETED, "sig-case"))
    good = signed_headers(body)
    now = int(time.time())
    return {
        "one byte of the body changed": (body.replace(b"sig-case", b"sig-casf"), good),
        "wrong secret": (body, signed_headers(body, key=KEY_B)),
        "timestamp 6 minutes old": (body, signed_headers(body, at=now - 360)),
        "timestamp 6 minutes ahead": (body, signed_headers(body, at=now + 360)),
        "timestamp not a number": (body, _tamper(good, **{"webhook-timestamp": "yesterday"})),
        "timestamp changed after signing": (body, _tamper(good, **{"webhook-timestamp": str(now - 1)})),
        "webhook-id changed after signing": (body, _tamper(good, **{"webhook-id": "msg_other"})),
        "signature without a comma": (body, _tamper(good, **{"webhook-signature": "v1" + good["webhook-signature"][3:]})),
        "signature without a version": (body, _tamper(good, **{"webhook-signature": good["webhook-signature"][3:]})),
        "unknown version": (body, _tamper(good, **{"webhook-signature": "v2," + good["webhook-signature"][3:]})),
        "signature not base64": (body, _tamper(good, **{"webhook-signature": "v1,@@@not-base64@@@"})),
        "signature empty": (body, _tamper(good, **{"webhook-signature": ""})),
        "signature 10 KB long": (body, _tamper(good, **{"webhook-signature": "v1," + "A" * 10_240})),
        "many signatures none valid": (body, _tamper(good, **{"webhook-signature": " ".join(["v1,AAAA"] * 50)})),
        "webhook-id missing": (body, {k: v for k, v in good.items() if k != "webhook-id"}),
        "webhook-timestamp missing": (body, {k: v for k, v in good.items() if k != "webhook-timestamp"}),
        "webhook-signature missing": (body, {k: v for k, v in good.items() if k != "webhook-signature"}),
        "webhook-id 300 characters": (body, signed_headers(body, message_id="m" * 300)),
        "no header at all": (body, {"Content-Type": "application/json"}),
        "body not UTF-8": (b'{"job_id": "\xff"}', _tamper(good)),
        "X-Webhook-Secret instead of a signature": (body, _tamper({"Content-Type": "application/json"},
                                                                  **{"X-Webhook-Secret": SECRET})),
    }


@pytest.mark.parametrize("case", list(_cases()))
def test_bad_signatures_are_401_never_5xx(signed_client, case):
    """Every malformed, missing, stale or wrong signature is exactly 401 Unauthorized."""
    body, headers = _cases()[case]  # signed now, not when the tests were collected
    response = post(signed_client, body, headers)
    assert response.status_code == 401
    assert response.get_json() == {"error": "Unauthorized"}


def test_bad_signature_is_not_remembered(signed_client):
    """A request that failed verification does not burn its webhook-id: the genuine one is processed."""
    body = raw(COMPLETED)
    post(signed_client, body, _tamper(signed_headers(body), **{"webhook-signature": "v1,AAAA"}))
    assert post(signed_client, body, signed_headers(body)).status_code == 200


class TestRotation:
    def test_either_of_two_secrets_verifies(self, make_app):
        """With two signing secrets configured, a request signed by either is processed."""
        client = make_app(APP_ENV="production", WEBHOOK_SIGNING_SECRET=f"{KEY_A} {KEY_B}").test_client()
        for key, job in ((KEY_A, "rot-a"), (KEY_B, "rot-b")):
            body = raw(payload(COMPLETED, job))
            assert post(client, body, signed_headers(body, key=key, message_id=job)).status_code == 200

    def test_a_removed_secret_no_longer_verifies(self, make_app):
        """Once a secret is removed from the list, the requests it signs are 401."""
        client = make_app(APP_ENV="production", WEBHOOK_SIGNING_SECRET=KEY_B).test_client()
        body = raw(COMPLETED)
        assert post(client, body, signed_headers(body, key=KEY_A)).status_code == 401

    def test_two_header_secrets_separated_by_a_comma(self, make_app):
        """WEBHOOK_SECRET also takes several values: any of them passes, others do not."""
        other = "x" * 40
        client = make_app(APP_ENV="production", WEBHOOK_SECRET=f"{SECRET}, {other}").test_client()
        for secret, job in ((SECRET, "h-1"), (other, "h-2")):
            response = client.post(URL, json=payload(COMPLETED, job), headers={"X-Webhook-Secret": secret})
            assert response.status_code == 200
        assert client.post(URL, json=COMPLETED, headers={"X-Webhook-Secret": "y" * 40}).status_code == 401


# (mode, environment, credential sent, expected status)
MODES = [
    ("secret", "production", "header", 200), ("secret", "production", "signature", 401),
    ("secret", "production", None, 401), ("secret", "development", None, 200),
    ("signature", "production", "signature", 200), ("signature", "production", "header", 401),
    ("signature", "production", None, 401), ("signature", "development", None, 200),
    ("signature", "development", "bad signature", 401),
    ("any", "production", "header", 200), ("any", "production", "signature", 200),
    ("any", "production", None, 401), ("any", "production", "bad header", 401),
    ("any", "production", "bad signature", 401), ("any", "development", None, 200),
]


def credentials(kind, body):
    headers = {"Content-Type": "application/json"}
    if kind == "header":
        headers["X-Webhook-Secret"] = SECRET
    elif kind == "bad header":
        headers["X-Webhook-Secret"] = "wrong"
    elif kind == "signature":
        headers.update(signed_headers(body))
    elif kind == "bad signature":
        headers.update(signed_headers(body, key=KEY_B))
    return headers


@pytest.mark.parametrize("mode, env, sent, expected", MODES)
def test_webhook_auth_modes(make_app, mode, env, sent, expected):
    """WEBHOOK_AUTH decides which credential is required (production) and every sent one is checked."""
    client = make_app(APP_ENV=env, WEBHOOK_AUTH=mode, WEBHOOK_SECRET=SECRET, WEBHOOK_SIGNING_SECRET=KEY_A).test_client()
    body = raw(COMPLETED)
    assert post(client, body, credentials(sent, body)).status_code == expected


@pytest.mark.parametrize("environ, variable", [
    ({"WEBHOOK_AUTH": "signature", "WEBHOOK_SECRET": SECRET}, "WEBHOOK_SIGNING_SECRET"),
    ({"WEBHOOK_AUTH": "secret", "WEBHOOK_SIGNING_SECRET": KEY_A}, "WEBHOOK_SECRET"),
    ({"WEBHOOK_AUTH": "any"}, "WEBHOOK_SECRET or WEBHOOK_SIGNING_SECRET"),
    ({"WEBHOOK_AUTH": "both"}, "WEBHOOK_AUTH"),
    ({"WEBHOOK_SIGNING_SECRET": "whsec_not*base64"}, "WEBHOOK_SIGNING_SECRET"),
    ({"WEBHOOK_SIGNING_SECRET": "whsec_" + base64.b64encode(b"short").decode()}, "WEBHOOK_SIGNING_SECRET"),
    ({"WEBHOOK_SIGNING_SECRET": f"{KEY_A},whsec_" + base64.b64encode(b"x" * 23).decode()}, "WEBHOOK_SIGNING_SECRET"),
    ({"WEBHOOK_SECRET": "sorami-webhook-secret-key-2025"}, "WEBHOOK_SECRET"),
    ({"WEBHOOK_SECRET": f"{SECRET} sorami-webhook-secret-key-2025"}, "WEBHOOK_SECRET"),
])
def test_production_refuses_configurations_that_do_not_authenticate(environ, variable):
    """Production refuses to start when the mode lacks its secret, a signing secret is malformed or
    short, or the spec's public example secret is configured."""
    with pytest.raises(ConfigError, match=variable):
        load_settings(environ={"APP_ENV": "production", **environ})


def test_signing_secret_makes_signatures_the_default():
    """Without WEBHOOK_AUTH, the mode is 'signature' once a signing secret is set, 'secret' before."""
    assert load_settings(environ={"APP_ENV": "development"})["WEBHOOK_AUTH"] == "secret"
    assert load_settings(environ={"APP_ENV": "development", "WEBHOOK_SIGNING_SECRET": KEY_A})["WEBHOOK_AUTH"] == "signature"


def test_example_secret_is_allowed_in_development():
    """The spec's example secret keeps working in development, where it protects nothing anyway."""
    settings = load_settings(environ={"APP_ENV": "development", "WEBHOOK_SECRET": "sorami-webhook-secret-key-2025"})
    assert settings["WEBHOOK_SECRET"] == ("sorami-webhook-secret-key-2025",)


def test_unsigned_secret_never_logged(signed_client, logs):
    """Neither signing secret nor signature appears in the logs."""
    body = raw(COMPLETED)
    headers = signed_headers(body)
    post(signed_client, body, headers)
    post(signed_client, body, _tamper(headers, **{"webhook-signature": "v1,AAAA"}))
    assert KEY_A not in logs.text and KEY_A[6:] not in logs.text
    assert headers["webhook-signature"][3:] not in logs.text
