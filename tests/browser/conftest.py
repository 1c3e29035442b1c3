"""Browser fixtures: a real gateway (embedded backend, tiny weights) and Debian's Chromium driven by Playwright."""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright
from skimage import data as samples

from colorizers import weights
from colorizers.registry import create_model
from tests.integration.processes import Gateway

REPO = Path(__file__).resolve().parents[2]
# Screenshots for the docs are written only when asked for (`make screenshots`); a test run changes no file.
SCREENSHOTS = Path(os.environ["WEB_SCREENSHOTS_DIR"]) if os.environ.get("WEB_SCREENSHOTS_DIR") else None
CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# One plain model, one that takes colour hints, one with seeds, one more for the side-by-side view.
MODELS = ["coloria-cnn", "wallner-beta", "zhang-siggraph17", "bigcolor"]
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 360, "height": 740}
MAX_SCREENSHOT_BYTES = 400_000
CSP = (
    "default-src 'self'; img-src 'self' blob: data:; style-src 'self'; script-src 'self'; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)
# Collects Content-Security-Policy violations the page reports, and the text fields of each form the page
# sends (the browser does not expose multipart bodies with files); init scripts are not subject to the CSP.
WATCH_PAGE = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__cspViolations.push(`${e.violatedDirective}: ${e.blockedURI}`);
});
window.__sentForms = [];
const send = XMLHttpRequest.prototype.send;
XMLHttpRequest.prototype.send = function (body) {
  if (body instanceof FormData) {
    window.__sentForms.push(Object.fromEntries([...body.entries()].filter(([, v]) => typeof v === "string")));
  }
  return send.call(this, body);
};
"""


@dataclass
class Photos:
    """Files a user might pick, written to a temporary folder."""

    cat: Path  # black-and-white JPEG, 451x300 (scikit-image's "chelsea", greyed)
    astronaut: Path  # black-and-white JPEG, 320x320
    second: Path  # another photo, to go over the All Models limit
    text_as_jpg: Path  # a text file named .jpg
    text: Path  # a .txt file


@dataclass
class WatchedPage:
    """A Playwright page plus what its console reported."""

    page: Page
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)

    def csp_violations(self) -> list[str]:
        reported = self.page.evaluate("window.__cspViolations || []")
        logged = [m for m in self.console_errors if "Content Security Policy" in m]
        return reported + logged

    def last_form(self) -> dict[str, str]:
        """The text fields of the last form the page sent."""
        return self.page.evaluate("window.__sentForms.at(-1)")


def _grey_jpeg(rgb: np.ndarray, path: Path, side: int | None = None) -> Path:
    image = Image.fromarray(rgb).convert("L")
    if side:
        image = image.resize((side, side), Image.Resampling.LANCZOS)
    image.save(path, "JPEG", quality=90)
    return path


@pytest.fixture(scope="session")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Photos:
    folder = tmp_path_factory.mktemp("photos")
    text = "This is a shopping list, not a photo.\n" * 20
    (folder / "notes.jpg").write_text(text)
    (folder / "notes.txt").write_text(text)
    return Photos(
        cat=_grey_jpeg(samples.chelsea(), folder / "cat.jpg"),
        astronaut=_grey_jpeg(samples.astronaut(), folder / "astronaut.jpg", side=320),
        second=_grey_jpeg(samples.coffee(), folder / "coffee.jpg"),
        text_as_jpg=folder / "notes.jpg",
        text=folder / "notes.txt",
    )


def serve(root: Path, models: list[str], weights_dir: Path | None = None) -> Iterator[Gateway]:
    """A gateway (embedded backend, free loopback ports) serving ``models``: tiny untrained ones saved under
    ``root`` unless ``weights_dir`` is given."""
    if weights_dir is None:
        weights_dir = root / "weights"
        for name in models:
            weights.save(create_model(name, "tiny"), weights_dir, variant="tiny", provenance="untrained")
    server = Gateway.with_settings(
        backend="embedded",
        weights_dir=weights_dir,
        result_dir=root / "results",
        models=models,
        api_keys=[],
        embedded_threads=2,
    )
    server.start()
    try:
        server.wait_ready(timeout=60)
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """The page's gateway; the docs' screenshots (`make screenshots`) show the shipped weights."""
    shipped = REPO / "model_store" / "weights" if SCREENSHOTS else None
    yield from serve(tmp_path_factory.mktemp("web-gateway"), MODELS, shipped)


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: apt-get install chromium (or make system-deps)")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


def open_page(browser: Browser, **context_options: object) -> tuple[BrowserContext, WatchedPage]:
    options: dict = {"viewport": DESKTOP, "accept_downloads": True, **context_options}
    context = browser.new_context(**options)
    context.add_init_script(WATCH_PAGE)
    page = context.new_page()
    page.set_default_timeout(15_000)
    watched = WatchedPage(page)
    page.on("console", lambda m: watched.console_errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: watched.page_errors.append(str(e)))
    return context, watched


@pytest.fixture
def web(browser: Browser) -> Iterator[WatchedPage]:
    """A desktop page (1280x800); the test fails if a script throws or the CSP blocks anything."""
    context, watched = open_page(browser)
    try:
        yield watched
        assert watched.page_errors == [], watched.page_errors
        assert watched.csp_violations() == []
    finally:
        context.close()


@pytest.fixture
def phone(browser: Browser) -> Iterator[WatchedPage]:
    """A 360-pixel-wide touch page."""
    context, watched = open_page(browser, viewport=PHONE, has_touch=True, is_mobile=True, device_scale_factor=1)
    try:
        yield watched
        assert watched.page_errors == [], watched.page_errors
        assert watched.csp_violations() == []
    finally:
        context.close()


def screenshot(page: Page, name: str, **options: object) -> Path | None:
    """Save <WEB_SCREENSHOTS_DIR>/<name> when that is set; a 256-colour palette when the PNG would pass 400 KB."""
    raw = page.screenshot(**options)  # type: ignore[arg-type]
    if SCREENSHOTS is None:
        return None
    image = Image.open(io.BytesIO(raw))
    buffer = io.BytesIO()
    image.save(buffer, "PNG", optimize=True)
    if buffer.tell() > MAX_SCREENSHOT_BYTES:
        buffer = io.BytesIO()
        image.convert("RGB").quantize(256, method=Image.Quantize.MEDIANCUT).save(buffer, "PNG", optimize=True)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / name
    path.write_bytes(buffer.getvalue())
    return path
