"""Standard Webhooks signatures (also under Svix's header names), replay protection, rotation, and
AUTH_TABLE: the one table of WEBHOOK_AUTH modes, configurations and credentials, run here through the
Flask client and in tests/test_gunicorn.py through gunicorn.

The requests are signed by the `standardwebhooks` package, the reference implementation, not by the
service's code.
"""

import base64
import json
import time
from datetime import UTC, datetime

import pytest
from standardwebhooks import Webhook

from image_webhook.domain.settings import ConfigError, load_settings
from tests.payloads import COMPLETED, PROGRESS, SECRET, URL, payload
from tests.test_logs import logged, written

KEY_A = "whsec_" + base64.b64encode(b"A" * 32).decode()
KEY_B = "whsec_" + base64.b64encode(b"B" * 32).decode()
BARE_KEY_A = KEY_A.removeprefix("whsec_")  # the same secret as bare base64, as some dashboards show it
OTHER_SECRET = "other-secret-0123456789abcdefghijklmnopqrstuvwxyz"
SIGNATURE_NAMES = ("webhook-id", "webhook-timestamp", "webhook-signature")
SVIX_NAMES = ("svix-id", "svix-timestamp", "svix-signature")


def signed_headers(body, key=KEY_A, message_id="msg_1", at=None, names=SIGNATURE_NAMES):
    """Headers of a request whose raw `body` (bytes) is signed with `key` at time `at` (now), sent under
    `names` (the Standard Webhooks ones, or SVIX_NAMES)."""
    at = time.time() if at is None else at
    stamp = datetime.fromtimestamp(at, tz=UTC)
    signature = Webhook(key).sign(message_id, stamp, body.decode("utf-8"))
    return {**dict(zip(names, (message_id, str(int(at)), signature), strict=True)), "Content-Type": "application/json"}


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
        "signature without a comma": (
            body,
            _tamper(good, **{"webhook-signature": "v1" + good["webhook-signature"][3:]}),
        ),
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
        "X-Webhook-Secret instead of a signature": (
            body,
            _tamper({"Content-Type": "application/json"}, **{"X-Webhook-Secret": SECRET}),
        ),
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


def _without(headers, name):
    return {k: v for k, v in headers.items() if k != name}


# (body, webhook-* headers, svix-* headers) -> the headers of a request mixing them
MIXED = {
    "svix-id with webhook-timestamp and webhook-signature": lambda body, std, svix: {
        **_without(std, "webhook-id"),
        "svix-id": std["webhook-id"],
    },
    "webhook-id with svix-timestamp and svix-signature": lambda body, std, svix: {
        **_without(svix, "svix-id"),
        "webhook-id": svix["svix-id"],
    },
    "both sets, each valid on its own, for two message ids": lambda body, std, svix: {**std, **svix},
    "both sets, the svix-signature by another key": lambda body, std, svix: {
        **std,
        **signed_headers(body, key=KEY_B, message_id="msg_a", names=SVIX_NAMES),
    },
    "both sets, svix-timestamp missing": lambda body, std, svix: {**std, **_without(svix, "svix-timestamp")},
}


class TestSvixNames:
    """Svix's client libraries send svix-id, svix-timestamp and svix-signature: the same scheme."""

    def test_signature_under_svix_names_is_processed(self, signed_client):
        """A request signed by the reference library and sent under the svix-* names is processed."""
        body = raw(COMPLETED)
        response = post(signed_client, body, signed_headers(body, names=SVIX_NAMES))
        assert response.status_code == 200 and response.get_json()["images_count"] == 1

    def test_both_sets_with_the_same_values_are_processed(self, signed_client):
        """A sender that sends both sets, with identical values, is processed."""
        body = raw(COMPLETED)
        headers = {**signed_headers(body), **signed_headers(body, names=SVIX_NAMES)}
        assert post(signed_client, body, headers).status_code == 200

    @pytest.mark.parametrize("case", list(MIXED))
    def test_mixed_or_differing_sets_are_401(self, signed_client, case):
        """A request mixing the two sets, or sending both with different values, is a 401."""
        body = raw(COMPLETED)
        standard, svix = signed_headers(body, message_id="msg_a"), signed_headers(body, names=SVIX_NAMES)
        response = post(signed_client, body, MIXED[case](body, standard, svix))
        assert response.status_code == 401 and response.get_json() == {"error": "Unauthorized"}

    def test_replayed_svix_id_is_a_duplicate(self, signed_client):
        """The same svix-id twice is 'Job déjà traité', and so is its replay under the webhook-id name."""
        body = raw(PROGRESS)
        first = post(signed_client, body, signed_headers(body, message_id="msg_svix", names=SVIX_NAMES))
        assert first.get_json()["status"] == "generating"
        for names in (SVIX_NAMES, SIGNATURE_NAMES):
            response = post(signed_client, body, signed_headers(body, message_id="msg_svix", names=names))
            assert response.get_json() == {"success": True, "message": "Job déjà traité"}


def test_bare_base64_signing_secret_is_accepted(make_app):
    """WEBHOOK_SIGNING_SECRET given as bare base64 (no whsec_) is the same secret: its signatures verify."""
    settings = load_settings(environ={"APP_ENV": "production", "WEBHOOK_SIGNING_SECRET": BARE_KEY_A})
    assert settings.webhook_signing_secret == (BARE_KEY_A,) and settings.webhook_auth == "signature"
    client = make_app(APP_ENV="production", WEBHOOK_SIGNING_SECRET=BARE_KEY_A).test_client()
    for key, job in ((KEY_A, "bare-1"), (BARE_KEY_A, "bare-2")):
        body = raw(payload(COMPLETED, job))
        response = post(client, body, signed_headers(body, key=key, message_id=job))
        assert response.status_code == 200 and response.get_json()["images_count"] == 1


# The configurations of AUTH_TABLE; each of its rows adds WEBHOOK_AUTH=<mode>.
ENVIRONMENTS = {
    # the spec's deployment: the header secret only
    "production, header secret only": {"APP_ENV": "production", "WEBHOOK_SECRET": SECRET},
    "production": {"APP_ENV": "production", "WEBHOOK_SECRET": SECRET, "WEBHOOK_SIGNING_SECRET": KEY_A},
    "development": {"APP_ENV": "development", "WEBHOOK_SECRET": SECRET, "WEBHOOK_SIGNING_SECRET": KEY_A},
    "development, no secret": {"APP_ENV": "development"},
    # rotation: two values of each, separated by a comma and by a space; then the first ones removed
    "production, rotating": {
        "APP_ENV": "production",
        "WEBHOOK_SECRET": f"{SECRET}, {OTHER_SECRET}",
        "WEBHOOK_SIGNING_SECRET": f"{KEY_A} {KEY_B}",
    },
    "production, first secrets removed": {
        "APP_ENV": "production",
        "WEBHOOK_SECRET": OTHER_SECRET,
        "WEBHOOK_SIGNING_SECRET": KEY_B,
    },
    "production, bare base64 signing secret": {"APP_ENV": "production", "WEBHOOK_SIGNING_SECRET": BARE_KEY_A},
}


def _secret(value):
    return lambda body, message_id: {"X-Webhook-Secret": value}


def _signature(key=KEY_A, names=SIGNATURE_NAMES):
    return lambda body, message_id: signed_headers(body, key=key, message_id=message_id, names=names)


def _both(*parts):
    return lambda body, message_id: {k: v for part in parts for k, v in part(body, message_id).items()}


# The credentials a row sends: name -> headers(body, message id), signed when the request is made.
CREDENTIALS = {
    "nothing": lambda body, message_id: {},
    "secret": _secret(SECRET),
    "second secret": _secret(OTHER_SECRET),
    "wrong secret": _secret("wrong"),
    "empty secret": _secret(""),
    "secret minus its last character": _secret(SECRET[:-1]),
    "secret plus one character": _secret(SECRET + "x"),
    "secret in upper case": _secret(SECRET.upper()),
    "non-ASCII secret": _secret("é" * 10),
    "signature": _signature(),
    "svix signature": _signature(names=SVIX_NAMES),
    "signature by KEY_B": _signature(KEY_B),
    "secret and signature": _both(_secret(SECRET), _signature()),
    "secret and KEY_B signature": _both(_secret(SECRET), _signature(KEY_B)),
    "wrong secret and signature": _both(_secret("wrong"), _signature()),
}
WRONG_SECRETS = (
    "wrong secret",
    "empty secret",
    "secret minus its last character",
    "secret plus one character",
    "secret in upper case",
    "non-ASCII secret",
)

# (mode, environment, credential sent, expected status): 200 processed, 401 {"error": "Unauthorized"}.
# Production requires a credential the mode accepts; every credential the mode checks must be valid, even in
# development; a credential of a scheme the mode does not use is ignored.
AUTH_TABLE = [
    ("secret", "production, header secret only", "secret", 200),
    ("secret", "production, header secret only", "nothing", 401),
    *(("secret", "production, header secret only", wrong, 401) for wrong in WRONG_SECRETS),
    ("secret", "production, header secret only", "signature", 401),
    ("secret", "production", "secret", 200),
    ("secret", "production", "nothing", 401),
    ("secret", "production", "wrong secret", 401),
    ("secret", "production", "signature", 401),
    ("secret", "production", "signature by KEY_B", 401),
    ("secret", "production", "svix signature", 401),
    ("secret", "production", "secret and KEY_B signature", 200),
    ("secret", "production", "wrong secret and signature", 401),
    ("secret", "development", "nothing", 200),
    ("secret", "development", "secret", 200),
    ("secret", "development", "wrong secret", 401),
    ("secret", "development", "signature", 200),
    ("secret", "development", "signature by KEY_B", 200),
    ("secret", "development, no secret", "nothing", 200),
    ("secret", "development, no secret", "wrong secret", 200),
    ("secret", "production, rotating", "secret", 200),
    ("secret", "production, rotating", "second secret", 200),
    ("secret", "production, rotating", "wrong secret", 401),
    ("secret", "production, first secrets removed", "secret", 401),
    ("secret", "production, first secrets removed", "second secret", 200),
    ("signature", "production", "signature", 200),
    ("signature", "production", "svix signature", 200),
    ("signature", "production", "nothing", 401),
    ("signature", "production", "secret", 401),
    ("signature", "production", "wrong secret", 401),
    ("signature", "production", "signature by KEY_B", 401),
    ("signature", "production", "wrong secret and signature", 200),
    ("signature", "development", "nothing", 200),
    ("signature", "development", "signature", 200),
    ("signature", "development", "signature by KEY_B", 401),
    ("signature", "development", "secret", 200),
    ("signature", "development", "wrong secret", 200),
    ("signature", "development, no secret", "signature by KEY_B", 200),
    ("signature", "production, rotating", "signature", 200),
    ("signature", "production, rotating", "signature by KEY_B", 200),
    ("signature", "production, first secrets removed", "signature", 401),
    ("signature", "production, first secrets removed", "signature by KEY_B", 200),
    ("signature", "production, bare base64 signing secret", "signature", 200),
    ("signature", "production, bare base64 signing secret", "svix signature", 200),
    ("signature", "production, bare base64 signing secret", "signature by KEY_B", 401),
    ("signature", "production, bare base64 signing secret", "nothing", 401),
    ("any", "production", "secret", 200),
    ("any", "production", "signature", 200),
    ("any", "production", "svix signature", 200),
    ("any", "production", "secret and signature", 200),
    ("any", "production", "nothing", 401),
    ("any", "production", "wrong secret", 401),
    ("any", "production", "signature by KEY_B", 401),
    ("any", "production", "secret and KEY_B signature", 401),
    ("any", "production", "wrong secret and signature", 401),
    ("any", "development", "nothing", 200),
    ("any", "development", "secret", 200),
    ("any", "development", "signature", 200),
    ("any", "development", "wrong secret", 401),
    ("any", "development", "signature by KEY_B", 401),
    ("any", "production, rotating", "secret", 200),
    ("any", "production, rotating", "second secret", 200),
    ("any", "production, rotating", "wrong secret", 401),
    ("any", "production, rotating", "signature", 200),
    ("any", "production, rotating", "signature by KEY_B", 200),
]


def auth_config(mode, env):
    """The settings (or environment variables) of one AUTH_TABLE configuration."""
    return {**ENVIRONMENTS[env], "WEBHOOK_AUTH": mode}


def auth_request(sent, job):
    """The body and headers of a completed notification for `job` (also its message id) carrying `sent`."""
    body = raw(payload(COMPLETED, job))
    return body, {"Content-Type": "application/json", **CREDENTIALS[sent](body, job)}


def check_answer(status, body, expected):
    """The answer an AUTH_TABLE row expects: the job processed, or exactly the spec's 401."""
    if expected == 200:
        return status == 200 and body.get("images_count") == 1
    return status == 401 and body == {"error": "Unauthorized"}


@pytest.mark.parametrize("mode, env, sent, expected", AUTH_TABLE)
def test_auth_table(make_app, mode, env, sent, expected):
    """Each AUTH_TABLE row through the Flask client: the credential sent gets the expected answer."""
    client = make_app(**auth_config(mode, env)).test_client()
    body, headers = auth_request(sent, "auth-row")
    response = post(client, body, headers)
    assert check_answer(response.status_code, response.get_json(), expected), (response.status_code, response.data)


def test_auth_table_rows_are_unique_and_known():
    """AUTH_TABLE names only known configurations and credentials, each row once."""
    assert len({(mode, env, sent) for mode, env, sent, _ in AUTH_TABLE}) == len(AUTH_TABLE)
    assert all(env in ENVIRONMENTS and sent in CREDENTIALS for _, env, sent, _ in AUTH_TABLE)


@pytest.mark.parametrize(
    "environ, variable",
    [
        ({"WEBHOOK_AUTH": "signature", "WEBHOOK_SECRET": SECRET}, "WEBHOOK_SIGNING_SECRET"),
        ({"WEBHOOK_AUTH": "secret", "WEBHOOK_SIGNING_SECRET": KEY_A}, "WEBHOOK_SECRET"),
        ({"WEBHOOK_AUTH": "any"}, "WEBHOOK_SECRET or WEBHOOK_SIGNING_SECRET"),
        ({"WEBHOOK_AUTH": "both"}, "WEBHOOK_AUTH"),
        ({"WEBHOOK_SIGNING_SECRET": "whsec_not*base64"}, "WEBHOOK_SIGNING_SECRET"),
        ({"WEBHOOK_SIGNING_SECRET": "whsec_" + base64.b64encode(b"short").decode()}, "WEBHOOK_SIGNING_SECRET"),
        (
            {"WEBHOOK_SIGNING_SECRET": f"{KEY_A},whsec_" + base64.b64encode(b"x" * 23).decode()},
            "WEBHOOK_SIGNING_SECRET",
        ),
        ({"WEBHOOK_SECRET": "sorami-webhook-secret-key-2025"}, "WEBHOOK_SECRET"),
        ({"WEBHOOK_SECRET": f"{SECRET} sorami-webhook-secret-key-2025"}, "WEBHOOK_SECRET"),
    ],
)
def test_production_refuses_configurations_that_do_not_authenticate(environ, variable):
    """Production refuses to start when the mode lacks its secret, a signing secret is malformed or
    short, or the spec's public example secret is configured."""
    with pytest.raises(ConfigError, match=variable):
        load_settings(environ={"APP_ENV": "production", **environ})


def test_signing_secret_makes_signatures_the_default():
    """Without WEBHOOK_AUTH, the mode is 'signature' once a signing secret is set, 'secret' before."""
    assert load_settings(environ={"APP_ENV": "development"}).webhook_auth == "secret"
    assert (
        load_settings(environ={"APP_ENV": "development", "WEBHOOK_SIGNING_SECRET": KEY_A}).webhook_auth == "signature"
    )


def test_example_secret_is_allowed_in_development():
    """The spec's example secret keeps working in development, where it protects nothing anyway."""
    settings = load_settings(environ={"APP_ENV": "development", "WEBHOOK_SECRET": "sorami-webhook-secret-key-2025"})
    assert settings.webhook_secret == ("sorami-webhook-secret-key-2025",)


def test_signing_secret_and_signatures_never_logged(signed_client, logs):
    """Both requests are logged (their 🎨 line, then ⏱️ or the 401), and neither the signing secret nor a
    signature appears in what is written, in either format."""
    body = raw(COMPLETED)
    headers = signed_headers(body)
    post(signed_client, body, {**headers, "X-Request-ID": "sig-ok"})
    post(signed_client, body, {**headers, "webhook-signature": "v1,AAAA", "X-Request-ID": "sig-bad"})
    assert logged(logs.records, "sig-ok", "🎨 [Image Webhook] Réception") == 1
    assert logged(logs.records, "sig-ok", "⏱️ [Image Webhook] Traitement terminé") == 1
    assert logged(logs.records, "sig-bad", "🎨 [Image Webhook] Réception") == 1
    assert logged(logs.records, "sig-bad", "⚠️ [Image Webhook] Requête refusée: 401") == 1
    text = written(logs.records)
    assert "sig-ok" in text and "sig-bad" in text
    for leaked in (KEY_A, BARE_KEY_A, headers["webhook-signature"].removeprefix("v1,")):
        assert leaked not in text
