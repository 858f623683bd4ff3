"""The dashboard's CSP lets it reach ingress (the API docs' "Try it" panel calls the prediction
route from the browser), and only ingress's plain origin: nothing from the URL's path, userinfo or
anything that would add a second source or directive."""

from __future__ import annotations

from aiohttp import web

from management_api.http import DASHBOARD_CSP, csp_for, dashboard_csp, url_origin


def _connect_src(csp: str) -> list[str]:
    directive = next(d.strip() for d in csp.split(";") if d.strip().startswith("connect-src"))
    return directive.split()[1:]


def test_connect_src_adds_the_public_ingress_origin() -> None:
    assert _connect_src(dashboard_csp("https://api.example.com/")) == [
        "'self'",
        "https://api.example.com",
    ]
    assert _connect_src(dashboard_csp("http://127.0.0.1:8000/base?x=1")) == [
        "'self'",
        "http://127.0.0.1:8000",
    ]
    assert url_origin("http://[::1]:8000") == "http://[::1]:8000"
    # The rest of the policy is the dashboard's.
    rest = dashboard_csp("https://api.example.com").replace(" https://api.example.com", "")
    assert rest == DASHBOARD_CSP


def test_odd_ingress_urls_add_nothing() -> None:
    for url in (
        "ftp://api.example.com",
        "api.example.com:8000",
        "https://user:pw@api.example.com",
        "https://api.example.com;script-src *",
        "https://api.example.com *",
        "",
    ):
        assert dashboard_csp(url) == DASHBOARD_CSP, url


def test_html_gets_the_dashboard_policy_data_the_api_policy() -> None:
    policy = csp_for("https://api.example.com")
    assert "https://api.example.com" in policy(web.Response(content_type="text/html"))
    assert "connect-src" not in policy(web.Response(content_type="application/json"))
