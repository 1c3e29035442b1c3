"""The web page in a real browser: upload, colourise, compare, download, All Models, errors, hints, phone width, CSP."""

from __future__ import annotations

import json
import re

import httpx
import pytest
from PIL import Image
from playwright.sync_api import Page, Route, expect

from tests.browser.conftest import CSP, MODELS, Photos, WatchedPage, screenshot
from tests.integration.processes import Gateway

pytestmark = pytest.mark.browser

FAMILIES = ("wallner", "zhang", "deoldify", "bigcolor", "coloria")
PAGES = ["", "models/", "how-it-works.html"] + [f"models/{family}.html" for family in FAMILIES]


def open_colouriser(page: Page, gateway: Gateway) -> None:
    page.goto(f"{gateway.base_url}/")
    expect(page.locator(".model-option")).to_have_count(len(MODELS) + 1)


def colourise(page: Page, *, check_progress: bool = False) -> dict:
    """Press Colourise; the API's JSON answer once every result image has loaded.

    With ``check_progress`` the request is held until the progress indicator has been seen.
    """
    held: list[Route] = []
    if check_progress:
        page.route("**/v1/colorize", lambda route: held.append(route))
    with page.expect_response(lambda r: r.url.endswith("/v1/colorize")) as answer:
        page.get_by_role("button", name="Colourise", exact=True).click()
        if check_progress:
            expect(page.locator("#progress")).to_be_visible()
            expect(page.get_by_role("button", name="Cancel")).to_be_visible()
            expect(page.locator("#run")).to_be_disabled()
            while not held:
                page.wait_for_timeout(20)
            held[0].continue_()
            page.unroute("**/v1/colorize")
    body = answer.value.json()
    expect(page.locator("#progress")).to_be_hidden()
    page.wait_for_function(
        "() => [...document.querySelectorAll('.compare-after')].every((i) => i.complete && i.naturalWidth > 0)"
    )
    return body


def scroll_to(page: Page, selector: str, margin: int, *, bottom: bool = False) -> None:
    """Scroll so the element's top (or bottom) is ``margin`` pixels inside the viewport, for screenshots."""
    page.evaluate(
        """([selector, margin, bottom]) => {
             const box = document.querySelector(selector).getBoundingClientRect();
             window.scrollTo(0, scrollY + (bottom ? box.bottom - innerHeight + margin : box.top - margin));
           }""",
        [selector, margin, bottom],
    )


def slider_value(page: Page, index: int = 0) -> int:
    return int(page.locator(".compare-range").nth(index).get_attribute("aria-valuenow") or -1)


def test_one_model_compare_and_download(web: WatchedPage, gateway: Gateway, photos: Photos) -> None:
    page = web.page
    response = page.goto(f"{gateway.base_url}/")
    assert response is not None and response.headers["content-security-policy"] == CSP
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    expect(page.locator(".model-option")).to_have_count(len(MODELS) + 1)
    for model in MODELS:  # every served model, with its one-line description and readiness
        card = page.locator(f"label[for='model-{model}']")
        expect(card).to_contain_text(model)
        expect(card.locator(".model-desc")).not_to_be_empty()
        expect(card.locator(".badge-ok")).to_have_text("ready")
    expect(page.locator("#run")).to_be_disabled()

    page.set_input_files("#file-input", str(photos.cat))
    expect(page.locator(".preview")).to_have_count(1)
    expect(page.locator(".preview-details")).to_contain_text("451×300")
    page.locator("#model-coloria-cnn").check()
    expect(page.locator("#hints-panel")).to_be_hidden()
    expect(page.locator("#seed-panel")).to_be_hidden()
    body = colourise(page)

    output = body["files"][0]["outputs"][0]
    assert output["model"] == "coloria-cnn" and output["status"] == "ok"
    card = page.locator(".card-result")
    expect(card).to_have_count(1)
    expect(card.locator(".card-title")).to_contain_text("coloria-cnn")
    expect(card.locator(".card-meta")).to_contain_text(re.compile(r"\d+ (ms|s) · 451×300"))

    # Keyboard: the range input is focusable and reports its value.
    slider = page.locator(".compare-range")
    assert slider_value(page) == 50
    slider.focus()
    for _ in range(5):
        page.keyboard.press("ArrowRight")
    assert slider_value(page) == 55
    page.keyboard.press("Home")
    assert slider_value(page) == 0
    page.keyboard.press("End")
    assert slider_value(page) == 100
    # Mouse: a click moves the divider under the pointer, dragging follows it.
    box = page.locator(".compare").bounding_box()
    assert box is not None
    page.mouse.click(box["x"] + 0.25 * box["width"], box["y"] + box["height"] / 2)
    assert abs(slider_value(page) - 25) <= 2
    page.mouse.move(box["x"] + 0.25 * box["width"], box["y"] + box["height"] / 2)
    page.mouse.down()
    page.mouse.move(box["x"] + 0.6 * box["width"], box["y"] + box["height"] / 2, steps=4)
    page.mouse.up()
    assert abs(slider_value(page) - 60) <= 2
    position = page.locator(".compare").evaluate("(e) => e.style.getPropertyValue('--position')")
    assert position == f"{slider_value(page)}%"

    with page.expect_download() as download:
        card.get_by_role("link", name=re.compile("Download JPG")).click()  # a JPEG photo gives a JPEG
    path = download.value.path()
    with Image.open(path) as result:
        assert result.format == "JPEG" and result.size == (451, 300)
    assert download.value.suggested_filename.endswith(".coloria-cnn.jpg")

    scroll_to(page, "#results", 90)
    screenshot(page, "web-single.png")


def test_all_models_side_by_side(web: WatchedPage, gateway: Gateway, photos: Photos) -> None:
    page = web.page
    open_colouriser(page, gateway)
    expect(page.get_by_label("All Models")).to_be_checked()  # the default
    page.set_input_files("#file-input", [str(photos.astronaut), str(photos.second)])
    expect(page.locator(".preview")).to_have_count(2)
    expect(page.locator("#run")).to_be_disabled()
    expect(page.locator("#run-help")).to_contain_text("exactly one photo")
    page.get_by_role("button", name="Remove coffee.jpg").click()
    expect(page.locator(".preview")).to_have_count(1)
    expect(page.locator("#run")).to_be_enabled()

    body = colourise(page, check_progress=True)
    outputs = body["files"][0]["outputs"]
    assert sorted(o["model"] for o in outputs) == sorted(MODELS)
    grid = page.locator(".result-grid-all")
    expect(grid.locator(".card-original img")).to_be_visible()
    expect(grid.locator(".card-result")).to_have_count(len(MODELS))
    for model in MODELS:
        card = grid.locator(f".card-result[data-model='{model}']")
        expect(card.locator(".compare-range")).to_have_count(1)
        expect(card.get_by_role("link", name=re.compile("Download JPG"))).to_have_attribute(
            "href", re.compile(rf"/v1/results/{body['id']}/.+\.{model}\.jpg$")
        )
    # Each slider is its own: moving one leaves the others.
    grid.locator(".compare-range").nth(1).focus()
    page.keyboard.press("PageUp")
    assert slider_value(page, 1) > 50 and slider_value(page, 0) == 50

    scroll_to(page, "#results", 16)
    screenshot(page, "web-all-models.png")


def test_wrong_files_show_clear_errors(web: WatchedPage, gateway: Gateway, photos: Photos) -> None:
    page = web.page
    open_colouriser(page, gateway)
    page.set_input_files("#file-input", str(photos.text))  # refused in the browser: not an image type
    expect(page.locator("#file-messages")).to_contain_text("notes.txt")
    expect(page.locator("#file-messages")).to_contain_text("JPEG, PNG, WebP, TIFF, BMP or GIF")
    expect(page.locator(".preview")).to_have_count(0)

    page.set_input_files("#file-input", str(photos.text_as_jpg))  # looks like a JPEG: the API judges it
    expect(page.locator(".preview")).to_have_count(1)
    expect(page.locator(".preview-fallback")).to_be_visible()
    page.locator("#model-wallner-beta").check()
    with page.expect_response(lambda r: r.url.endswith("/v1/colorize")) as answer:
        page.get_by_role("button", name="Colourise", exact=True).click()
    assert answer.value.status == 415
    api_message = answer.value.json()["error"]["message"]
    error = page.locator("#error")
    expect(error).to_be_visible()
    expect(error).to_have_attribute("data-code", "unsupported_image")
    expect(error.locator("#error-title")).to_have_text("This file is not a photo we can read")
    expect(error.locator("#error-message")).to_have_text(api_message)
    assert "notes.jpg" in api_message
    expect(page.locator("#results")).to_be_hidden()
    expect(page.locator("#run")).to_be_enabled()  # the user can fix the choice and try again
    page.set_input_files("#file-input", str(photos.text))
    scroll_to(page, "#error", 24, bottom=True)
    screenshot(page, "web-error.png")


def test_hints_and_seed_rerun(web: WatchedPage, gateway: Gateway, photos: Photos) -> None:
    page = web.page
    open_colouriser(page, gateway)
    page.set_input_files("#file-input", str(photos.astronaut))
    page.locator("#model-zhang-siggraph17").check()
    expect(page.locator("#hints-panel")).to_be_visible()
    expect(page.locator("#seed-panel")).to_be_hidden()
    first = colourise(page)

    image = page.locator("#hints-image")
    box = image.bounding_box()
    assert box is not None
    image.click(position={"x": 0.3 * box["width"], "y": 0.4 * box["height"]})
    expect(page.locator(".hint-row")).to_have_count(1)
    expect(page.locator(".hint-marker")).to_have_count(1)
    page.get_by_label("Colour of point 1").fill("#cc3311")
    page.get_by_role("button", name="Add a point at the centre").click()
    page.get_by_role("button", name="Remove point 2").click()
    expect(page.locator(".hint-row")).to_have_count(1)

    second = colourise(page)
    form = web.last_form()
    assert form["model"] == "zhang-siggraph17" and "seed" not in form
    (hint,) = json.loads(form["hints"])
    assert hint["color"] == "#cc3311" and abs(hint["x"] - 0.3) < 0.01 and abs(hint["y"] - 0.4) < 0.01
    assert second["id"] != first["id"]
    expect(page.locator(".card-result .download")).to_have_attribute("href", re.compile(second["id"]))
    scroll_to(page, "#options-panel", 8)
    screenshot(page, "web-hints.png")

    # A model with diverse outputs: "Try another" draws a seed and runs again.
    page.locator("#model-bigcolor").check()
    expect(page.locator("#hints-panel")).to_be_hidden()
    expect(page.locator("#seed-panel")).to_be_visible()
    with page.expect_response(lambda r: r.url.endswith("/v1/colorize")) as answer:
        page.get_by_role("button", name="Try another").click()
    assert answer.value.ok
    seed = page.locator("#seed").input_value()
    form = web.last_form()
    assert seed.isdigit() and form["seed"] == seed and form["model"] == "bigcolor" and "hints" not in form
    expect(page.locator(".card-result[data-model='bigcolor']")).to_be_visible()


def test_phone_width(phone: WatchedPage, gateway: Gateway, photos: Photos) -> None:
    page = phone.page
    for path in PAGES:
        page.goto(f"{gateway.base_url}/{path}")
        page.wait_for_load_state("networkidle")
        width, viewport = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
        assert width <= viewport, f"/{path} scrolls sideways at 360 px ({width} px wide)"

    open_colouriser(page, gateway)
    page.set_input_files("#file-input", str(photos.cat))
    page.locator("#model-coloria-cnn").check()
    colourise(page)
    width, viewport = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert width <= viewport
    box = page.locator(".compare").bounding_box()
    assert box is not None and box["width"] <= 360
    page.locator(".compare").scroll_into_view_if_needed()
    box = page.locator(".compare").bounding_box()
    assert box is not None
    page.touchscreen.tap(box["x"] + 0.8 * box["width"], box["y"] + box["height"] / 2)
    assert abs(slider_value(page) - 80) <= 3
    page.touchscreen.tap(box["x"] + 0.5 * box["width"], box["y"] + box["height"] / 2)
    scroll_to(page, "#results", 330)
    screenshot(page, "web-phone.png")


def test_pages_headers_and_accessibility(web: WatchedPage, gateway: Gateway) -> None:
    page = web.page
    for path in PAGES:
        response = page.goto(f"{gateway.base_url}/{path}")
        assert response is not None and response.status == 200, path
        assert response.headers["content-security-policy"] == CSP, path
        page.wait_for_load_state("networkidle")
        broken = page.evaluate("[...document.images].filter((i) => i.src && !i.naturalWidth).map((i) => i.src)")
        assert broken == [], f"/{path}: images that did not load: {broken}"
        missing_alt = page.evaluate("[...document.images].filter((i) => !i.hasAttribute('alt')).map((i) => i.src)")
        assert missing_alt == [], f"/{path}: images without alt text: {missing_alt}"
        unnamed = page.evaluate(
            """[...document.querySelectorAll('input, select, button, a[href]')]
               .filter((e) => e.type !== 'file' && e.getClientRects().length > 0)
               .filter((e) => !(e.labels?.length || e.getAttribute('aria-label') || e.textContent.trim() || e.title))
               .map((e) => e.outerHTML.slice(0, 80))"""
        )
        assert unnamed == [], f"/{path}: controls without an accessible name: {unnamed}"
        html = httpx.get(f"{gateway.base_url}/{path}").text
        inline = re.findall(r"<style|<script(?![^>]*\bsrc=)[^>]*>|\sstyle=|\son[a-z]+=", html)
        assert inline == [], f"/{path} has inline styles, scripts or event handlers: {inline}"

    page.goto(f"{gateway.base_url}/models/zhang.html")
    examples = page.locator("#example figure")  # input, each model of the family, the original
    expect(examples).to_have_count(4)
    expect(page.locator("figure[data-example=zhang-eccv16] img")).to_have_js_property("complete", True)
    expect(page.locator("footer")).to_contain_text("GET /v1/models")
    entry = page.locator("article#zhang-siggraph17")  # live catalogue entry, with the paper from /v1/models
    expect(entry).to_contain_text("SIGGRAPH 2017")
    try_it = entry.get_by_role("link", name="Try zhang-siggraph17")
    expect(try_it).to_have_attribute("href", re.compile(r"\?model=zhang-siggraph17$"))
    page.goto(f"{gateway.base_url}/?model=bigcolor")
    expect(page.locator("#model-bigcolor")).to_be_checked()
    # Keyboard: the skip link comes first and leads to the file picker, whose focus is visible.
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to the colouriser")).to_be_focused()
    page.keyboard.press("Enter")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "file-input"
    outline = page.evaluate("getComputedStyle(document.querySelector('.dropzone label.button')).outlineStyle")
    assert outline == "solid"
    # The OpenAPI page keeps its own assets: no page CSP there.
    assert "content-security-policy" not in httpx.get(f"{gateway.base_url}/docs").headers
