"""/docs works offline: the Swagger UI page loads its JS and CSS from the app itself, never a CDN."""

from __future__ import annotations

from html.parser import HTMLParser
from urllib.parse import urlparse

import pytest

from tests.support import make_settings, running_app


class AssetLinks(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        wanted = {"script": "src", "link": "href"}.get(tag)
        for name, value in attrs:
            if name == wanted and value:
                self.urls.append(value)


@pytest.fixture(scope="module")
def app():
    with running_app(make_settings()) as handle:
        yield handle


def test_docs_page_loads_only_local_assets_and_they_are_served(app):
    page = app.http.get("/docs")
    assert page.status_code == 200
    assert "SwaggerUIBundle" in page.text
    parser = AssetLinks()
    parser.feed(page.text)
    assert len(parser.urls) == 2, parser.urls  # the bundle's script and its stylesheet
    for url in parser.urls:
        parsed = urlparse(url)
        assert not parsed.scheme and not parsed.netloc, f"{url} is not served by the app"
        asset = app.http.get(url)
        assert asset.status_code == 200, url
        assert len(asset.content) > 10_000, url
    types = sorted(app.http.get(url).headers["content-type"].split(";")[0] for url in parser.urls)
    assert types == ["text/css", "text/javascript"]


def test_only_the_ui_assets_are_served_from_the_assets_path(app):
    assert app.http.get("/docs/assets/index.html").status_code == 404
    assert app.http.get("/docs/assets/..%2Frequirements.txt").status_code == 404


def test_cdn_only_uis_are_not_offered(app):
    assert app.http.get("/redocs").status_code == 404
    assert app.http.get("/scalar").status_code == 404
    assert "/docs/assets/{filename}" not in app.http.get("/openapi.json").json()["paths"]
