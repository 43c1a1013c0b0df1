"""ProxyFix trusts exactly one proxy, and only when TRIAL_SCHEDULE_TRUSTED_PROXIES=1."""

from __future__ import annotations

import pytest
from flask import Flask, request

from api.proxy import SETTING, behind_proxy

FORWARDED = {"X-Forwarded-For": "203.0.113.9, 198.51.100.7", "X-Forwarded-Proto": "https",
             "X-Forwarded-Host": "schedule.example.org", "X-Forwarded-Port": "443"}


def seen(environ: dict[str, str]) -> list[str]:
    app = Flask(__name__)

    @app.get("/seen")
    def where() -> list[str]:
        return [request.remote_addr or "", request.scheme, request.host, request.url_root]

    answer = behind_proxy(app, environ).test_client().get(
        "/seen", headers=FORWARDED, environ_base={"REMOTE_ADDR": "127.0.0.1"})
    return list(answer.get_json())


def test_one_trusted_proxy_gives_the_last_forwarded_hop_and_the_public_url():
    assert seen({SETTING: "1"}) == ["198.51.100.7", "https", "schedule.example.org",
                                    "https://schedule.example.org/"]


def test_without_the_setting_forwarded_headers_are_ignored():
    assert seen({}) == ["127.0.0.1", "http", "localhost", "http://localhost/"]
    assert seen({SETTING: "0"}) == ["127.0.0.1", "http", "localhost", "http://localhost/"]


@pytest.mark.parametrize("value", ["2", "yes", "-1"])
def test_any_other_number_of_proxies_is_refused(value):
    with pytest.raises(ValueError, match="TRIAL_SCHEDULE_TRUSTED_PROXIES must be 0 or 1"):
        seen({SETTING: value})
