"""Redaction: every kind of secret masked in headers and text, ordinary values left alone."""

from __future__ import annotations

import base64
import json
from urllib.parse import quote, quote_plus

import pytest

from linker.redaction import MASK, Redactor, basic_credential

PASSWORD = "hunter2-password"
SIGNING_KEY = "sk-0123456789abcdef"
API_KEY = "api-key-value-42"
TOKEN_VALUE = "tok-secret-777"
SIGNATURE = "4c633fca4914f51df04c9ec40f4545d66d653e771c6634e33eed52a242bc278c"


def _redactor() -> Redactor:
    return Redactor.for_credentials(
        username="alice",
        password=PASSWORD,
        signing_key=SIGNING_KEY,
        secret_header_values={"X-Api-Key": API_KEY, "X-Token": TOKEN_VALUE},
    )


def test_text_masks_password_signing_key_and_secret_header_values() -> None:
    text = f"pw={PASSWORD} key={SIGNING_KEY} api={API_KEY} tok={TOKEN_VALUE}"
    masked = _redactor().text(text)
    for secret in (PASSWORD, SIGNING_KEY, API_KEY, TOKEN_VALUE):
        assert secret not in masked
    assert masked == f"pw={MASK} key={MASK} api={MASK} tok={MASK}"


def test_text_masks_basic_token_signature_and_url_userinfo() -> None:
    token = basic_credential("alice", PASSWORD)
    text = (f"Authorization: Basic {token} Gladly-Authorization: SigningAlgorithm=hmac-sha256, "
            f"Signature={SIGNATURE} url=https://alice:{PASSWORD}@adaptor.example/path")
    masked = _redactor().text(text)
    assert token not in masked
    assert SIGNATURE not in masked
    assert "alice:" not in masked
    assert f"Signature={MASK}" in masked
    assert f"https://{MASK}@adaptor.example/path" in masked


def test_headers_mask_by_name_and_value() -> None:
    token = basic_credential("alice", PASSWORD)
    headers = {
        "Authorization": f"Basic {token}",
        "Gladly-Authorization": f"SigningAlgorithm=hmac-sha256, SignedHeaders=accept;gladly-time, "
                                f"Signature={SIGNATURE}",
        "X-Api-Key": API_KEY,
        "X-Token": TOKEN_VALUE,
        "Cookie": "session=abc123",
        "Set-Cookie": "session=abc123; HttpOnly",
        "X-Echo": f"the key is {SIGNING_KEY}",
        "Accept": "application/json",
    }
    masked = _redactor().headers(headers)
    assert masked["Authorization"] == f"Basic {MASK}"
    assert masked["Gladly-Authorization"] == (
        f"SigningAlgorithm=hmac-sha256, SignedHeaders=accept;gladly-time, Signature={MASK}"
    )
    assert masked["X-Api-Key"] == MASK
    assert masked["X-Token"] == MASK
    assert masked["Cookie"] == MASK
    assert masked["Set-Cookie"] == MASK
    assert masked["X-Echo"] == f"the key is {MASK}"
    assert masked["Accept"] == "application/json"


def test_ordinary_values_are_left_alone() -> None:
    redactor = _redactor()
    text = ('{"results":[{"externalCustomerId":"42","name":"alice",'
            '"emails":[{"original":"a@b.c"}]}]}')
    assert redactor.text(text) == text
    plain = {"Content-Type": "application/json", "Gladly-Time": "20190213T214016Z",
             "X-B3-Traceid": "bd799210f8d549609a08ccef8ee7f166"}
    assert redactor.headers(plain) == plain


def test_longest_secret_masked_whole() -> None:
    redactor = Redactor(["abcdef", "abcdefghij"])
    assert redactor.text("x abcdefghij y") == f"x {MASK} y"


def test_very_short_secrets_are_masked_where_they_stand_alone() -> None:
    # Issue 9: secrets under 3 characters used to be left in clear; they are now masked
    # wherever they are not part of a longer word, and in headers by name.
    redactor = Redactor.for_credentials(password="pw", secret_header_values={"X-Key": "k1"})
    assert redactor.text("pwd and k1") == f"pwd and {MASK}"
    assert redactor.text('{"password":"pw"}') == f'{{"password":"{MASK}"}}'
    assert redactor.headers({"X-Key": "k1"}) == {"X-Key": MASK}


HARD = 'p"a\\ss/wörd&<>é 1'


@pytest.mark.parametrize("form", [
    json.dumps(HARD)[1:-1],
    json.dumps(HARD, ensure_ascii=False)[1:-1],
    json.dumps(HARD, ensure_ascii=False)[1:-1].replace("&", "\\u0026").replace("<", "\\u003c")
    .replace(">", "\\u003e"),
    quote(HARD, safe=""),
    quote(HARD, safe="").lower(),
    quote_plus(HARD),
    base64.b64encode(HARD.encode()).decode(),
    base64.b64encode(f"alice:{HARD}".encode()).decode(),
], ids=["json-ascii", "json", "go", "url", "url-lower", "url-plus", "base64", "basic"])
def test_escaped_and_encoded_forms_are_masked(form: str) -> None:
    redactor = Redactor.for_credentials(username="alice", password=HARD)
    masked = redactor.text(f"echo [{form}] end")
    assert masked == f"echo [{MASK}] end"
    assert redactor.finds_secret(form)


def test_one_compiled_pattern_per_secret_set() -> None:
    first = Redactor.for_credentials(password=PASSWORD, signing_key=SIGNING_KEY)
    second = Redactor.for_credentials(password=PASSWORD, signing_key=SIGNING_KEY)
    assert first._pattern is second._pattern


def test_authorization_without_scheme_is_masked_whole() -> None:
    assert _redactor().header_value("Authorization", "opaque-token") == MASK
    assert _redactor().header_value("Proxy-Authorization", "Bearer abc") == f"Bearer {MASK}"


def test_a_short_secret_is_masked_in_base64_too() -> None:
    redactor = Redactor(["ø§"])
    encoded = base64.b64encode("ø§".encode()).decode()
    assert redactor.text(f'{{"b64": "{encoded}", "raw": "ø§"}}') == (
        f'{{"b64": "{MASK}", "raw": "{MASK}"}}')
    assert redactor.text(f"x{encoded.rstrip('=')}y") == f"x{encoded.rstrip('=')}y"  # inside


def test_also_mask_covers_secrets_a_variant_target_does_not_send() -> None:
    redactor = Redactor.for_credentials(signing_key="wrong-key", also_mask=["real-key"])
    assert redactor.text("echo real-key and wrong-key") == f"echo {MASK} and {MASK}"
