// Model pages: the live catalogue entries of one family (or of all models), and example captions.

import {
  ROOT,
  el,
  errorTitle,
  familyHref,
  fetchModels,
  getJson,
  markNavigation,
  modelBadges,
  PROVENANCE,
  summarise,
} from "./common.js";

const family = document.body.dataset.family || "";

function yesNo(flag, yes) {
  return flag ? yes : "no";
}

function metricsText(metrics) {
  const entries = Object.entries(metrics || {}).filter(([, v]) => typeof v === "number");
  if (!entries.length) return null;
  return entries.map(([k, v]) => `${k} ${Number.isInteger(v) ? v : v.toFixed(3)}`).join(", ");
}

function tryHref(id) {
  return new URL(`./?model=${encodeURIComponent(id)}`, ROOT).href;
}

function modelEntry(model) {
  const rows = [
    ["Paper", model.paper || "—"],
    ["Working size", `${model.working_size} px (the grey photo the model sees; the result keeps your photo's size)`],
    ["Colour hints", yesNo(model.supports_hints, "yes: click on the photo to place colour points")],
    ["Seed", yesNo(model.supports_seed, "yes: each seed gives another colouring")],
    ["Weights", PROVENANCE[model.provenance] || model.provenance],
    ["Status", model.ready ? "ready" : `not ready (${model.reason})`],
  ];
  const metrics = metricsText(model.metrics);
  if (metrics) rows.push(["Validation", metrics]);
  if (model.architecture !== model.id) rows.splice(1, 0, ["Architecture", model.architecture]);
  return el(
    "article",
    { class: "card model-entry", id: model.id },
    el("h3", {}, model.id, " ", modelBadges(model)),
    el("p", {}, model.description),
    el("dl", {}, rows.map(([term, value]) => [el("dt", {}, term), el("dd", {}, value)])),
    el("p", { class: "try-link" }, el("a", { class: "button", href: tryHref(model.id) }, `Try ${model.id}`)),
  );
}

async function renderFamilyModels(models) {
  const box = document.getElementById("family-models");
  if (!box) return;
  const mine = models.filter((m) => m.family === family);
  box.replaceChildren(
    ...(mine.length
      ? mine.map(modelEntry)
      : [el("p", { class: "help" }, "This gateway does not serve a model of this family at the moment.")]),
  );
  box.setAttribute("aria-busy", "false");
  if (location.hash) document.getElementById(location.hash.slice(1))?.scrollIntoView();
}

function renderCatalogue(models) {
  const body = document.getElementById("catalogue-body");
  if (!body) return;
  body.replaceChildren(
    ...models.map((m) =>
      el(
        "tr",
        {},
        el("th", { scope: "row" }, el("a", { href: familyHref(m.family, m.id) }, m.id)),
        el("td", {}, summarise(m.description)),
        el("td", {}, m.supports_hints ? "hints" : "", m.supports_hints && m.supports_seed ? ", " : "", m.supports_seed ? "seed" : ""),
        el("td", {}, PROVENANCE[m.provenance] || m.provenance),
        el("td", {}, m.ready ? "ready" : "not ready"),
      ),
    ),
  );
  document.getElementById("catalogue")?.setAttribute("aria-busy", "false");
}

function showError(error) {
  for (const id of ["family-models", "catalogue-error"]) {
    const box = document.getElementById(id);
    if (box) {
      box.replaceChildren(
        el("div", { class: "alert", role: "alert" }, el("p", { class: "alert-title" }, errorTitle(error.code)), el("p", {}, error.message)),
      );
      box.hidden = false;
    }
  }
}

/** Captions under example pictures: which weights made them, and the pipeline's model and sizes. */
async function captionExamples() {
  const figures = document.querySelectorAll("[data-example], [data-example-pipeline]");
  if (!figures.length) return;
  let manifest;
  try {
    manifest = await getJson("img/examples/examples.json");
  } catch {
    return;
  }
  const pipeline = manifest.pipeline;
  for (const figure of figures) {
    const id = figure.dataset.example ?? pipeline?.model;
    const info = manifest.models?.[id];
    const caption = figure.querySelector("figcaption");
    if (!info || !caption) continue;
    let note = "";
    if (info.provenance === "untrained") note = "untrained weights: this shows the pipeline, not what the model can do";
    else if (info.provenance === "imported") note = "published weights";
    else note = `weights trained here${info.steps ? ` (${info.steps} steps)` : ""}`;
    caption.append(el("span", { class: "example-note" }, ` (${note})`));
  }
  const texts = {
    model: pipeline?.model,
    size: pipeline && `${pipeline.working_size} × ${pipeline.working_size}`,
    "photo-size": manifest.width && `${manifest.width} × ${manifest.height}`,
  };
  for (const span of document.querySelectorAll("[data-pipeline]")) {
    if (texts[span.dataset.pipeline]) span.textContent = texts[span.dataset.pipeline];
  }
  const credit = document.getElementById("example-credit");
  if (credit && manifest.credit) credit.textContent = `Photo: ${manifest.credit}. Generated ${manifest.created.slice(0, 10)}.`;
}

async function start() {
  markNavigation();
  captionExamples();
  try {
    const models = await fetchModels();
    renderFamilyModels(models);
    renderCatalogue(models);
  } catch (error) {
    showError(error);
  }
}

start();
