// Before/after comparison slider: two stacked images and a native range input (mouse, touch and keyboard).

import { el } from "./common.js";

/**
 * A comparison of two images of the same size. The original is on the left of the divider, the colour
 * result on the right; the range input under the pointer moves the divider (arrow keys, Page Up/Down,
 * Home/End when focused). With `greyBefore`, the "before" side shows the colour result without its
 * colour (for originals the browser cannot display, such as TIFF: the result keeps their luminance).
 */
export function createCompare({ beforeSrc, afterSrc, beforeAlt, afterAlt, label, width, height, greyBefore = false, start = 50 }) {
  const before = el("img", {
    class: `compare-before${greyBefore ? " compare-grey" : ""}`,
    src: beforeSrc,
    alt: beforeAlt,
    draggable: "false",
  });
  const after = el("img", { class: "compare-after", src: afterSrc, alt: afterAlt, draggable: "false" });
  const range = el("input", {
    type: "range",
    class: "compare-range",
    min: 0,
    max: 100,
    step: 1,
    value: start,
    "aria-label": label,
  });
  const root = el(
    "div",
    { class: "compare" },
    before,
    el("div", { class: "compare-after-wrap" }, after),
    el("div", { class: "compare-divider", "aria-hidden": "true" }, el("span", { class: "compare-knob" })),
    el("span", { class: "compare-tag compare-tag-before", "aria-hidden": "true" }, "Before"),
    el("span", { class: "compare-tag compare-tag-after", "aria-hidden": "true" }, "After"),
    range,
  );

  function show(value) {
    const position = Math.min(100, Math.max(0, Number(value)));
    root.style.setProperty("--position", `${position}%`);
    range.setAttribute("aria-valuenow", String(position));
    range.setAttribute("aria-valuetext", `divider at ${position}%: original on the left, colour on the right`);
  }

  if (width && height) {
    // Keep the whole comparison in view: no taller than 75% of the window.
    root.style.setProperty("aspect-ratio", `${width} / ${height}`);
    root.style.setProperty("max-width", `calc(75vh * ${(width / height).toFixed(4)})`);
  }
  range.addEventListener("input", () => show(range.value));
  show(start);
  return root;
}
