"""Pages outside the API: the favicon, and the icon every page links to."""

import re
import warnings

import pytest
from django.contrib.staticfiles import finders
from django.test import AsyncClient, Client

PAGES = ["/", "/chat/", "/channels/", "/notes/", "/usage/"]


def test_favicon_is_an_icon():
    response = Client().get("/favicon.ico")
    assert response.status_code == 200
    assert response["Content-Type"] == "image/x-icon"
    body = response.content
    assert body[:4] == b"\x00\x00\x01\x00"  # ICO header: reserved 0, type 1 (icon)
    assert "max-age" in response["Cache-Control"]


@pytest.mark.django_db
@pytest.mark.parametrize("page", [*PAGES, "/admin/login/"])
def test_every_page_gets_an_icon_that_exists(page):
    html = Client().get(page).content.decode()
    link = re.search(r'<link rel="icon" href="/static/([^"]+)"', html)
    if link is None:  # the admin links none: the browser asks for /favicon.ico
        assert page.startswith("/admin/")
        assert Client().get("/favicon.ico").status_code == 200
    else:
        assert finders.find(link.group(1)), link.group(1)


async def test_favicon_under_asgi_raises_no_warning():
    # Django's ASGI handler warns when it must stream a synchronous file.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        response = await AsyncClient().get("/favicon.ico")
    assert response.status_code == 200 and response.content[:4] == b"\x00\x00\x01\x00"
