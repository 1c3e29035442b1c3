"""The colour-reference drop zone of the web page, for the exemplar model, in a real browser."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image, ImageOps
from playwright.sync_api import expect
from skimage import data as samples

from tests.browser.conftest import Photos, WatchedPage, serve
from tests.browser.test_web import colourise
from tests.integration.processes import Gateway

pytestmark = pytest.mark.browser

MODELS = ["exemplar", "wallner-beta"]


@pytest.fixture(scope="module")
def reference_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    yield from serve(tmp_path_factory.mktemp("reference-gateway"), MODELS)


@pytest.fixture(scope="module")
def colour_reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A colour photo of the same cat: mirrored and cropped."""
    path = tmp_path_factory.mktemp("reference") / "cat-in-colour.jpg"
    image = Image.fromarray(samples.chelsea())
    ImageOps.mirror(image.crop((40, 20, 451, 300))).save(path, "JPEG", quality=90)
    return path


def test_reference_drop_zone(
    web: WatchedPage, reference_gateway: Gateway, photos: Photos, colour_reference: Path
) -> None:
    page = web.page
    page.goto(f"{reference_gateway.base_url}/")
    expect(page.locator(".model-option")).to_have_count(len(MODELS) + 1)
    page.set_input_files("#file-input", str(photos.cat))

    page.locator("#model-wallner-beta").check()
    expect(page.locator("#reference-panel")).to_be_hidden()
    page.locator("#model-exemplar").check()
    expect(page.locator("#reference-panel")).to_be_visible()
    expect(page.locator("#run")).to_be_disabled()
    expect(page.locator("#run-help")).to_contain_text("needs a colour reference")

    page.set_input_files("#reference-input", str(colour_reference))
    expect(page.locator("#reference-chosen")).to_be_visible()
    expect(page.locator("#reference-name")).to_have_text("cat-in-colour.jpg")
    expect(page.locator("#run")).to_be_enabled()
    body = colourise(page)
    assert body["files"][0]["outputs"][0]["status"] == "ok"
    assert web.last_form()["model"] == "exemplar"
    reference_card = page.locator(".card-reference")
    expect(reference_card).to_be_visible()
    page.wait_for_function("() => document.querySelector('.card-reference img').naturalWidth > 0")

    # All models: the reference goes to the model that takes one; every model succeeds.
    page.locator("#model-all").check()
    expect(page.locator("#reference-panel")).to_be_visible()
    body = colourise(page)
    assert {o["model"]: o["status"] for o in body["files"][0]["outputs"]} == {m: "ok" for m in MODELS}
    expect(page.locator(".card-reference")).to_have_count(1)

    page.get_by_role("button", name="Remove the reference").click()
    expect(page.locator("#reference-chosen")).to_be_hidden()
