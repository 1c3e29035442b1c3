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

const EXAMPLES = new URL("img/examples/", ROOT).href;

function exampleFigure(file, alt, ...caption) {
  const image = el("img", { src: `${EXAMPLES}${file}`, alt, width: 320, height: 320, loading: "lazy" });
  return el("figure", {}, image, el("figcaption", {}, ...caption));
}

/** A family page's example: the grey input, each of the family's models, the original (data-models lists ids). */
function renderExample() {
  const section = document.querySelector("section#example[data-models]");
  if (!section) return;
  const ids = section.dataset.models.split(" ").filter(Boolean);
  const coloured = ids.map((id) => {
    const figure = exampleFigure(`${id}.jpg`, `The astronaut photo coloured by ${id}`, el("strong", {}, id));
    figure.dataset.example = id;
    return figure;
  });
  section.append(
    el("p", {}, "The original was turned grey, then coloured by each model of this family; the original colour photo is last, for reference."),
    el(
      "div",
      { class: "figure-row" },
      exampleFigure("input.jpg", "The black-and-white input photo of an astronaut", "Input (black and white)"),
      coloured,
      exampleFigure("original.jpg", "The original colour photo of the astronaut", "The original colour photo"),
    ),
    el("p", { class: "help", id: "example-credit" }),
  );
}

/** A family page's footer: where its live facts come from. */
function renderFooter() {
  const footer = document.querySelector("body[data-family] footer.site-footer:empty");
  if (!footer) return;
  const api = el("a", { href: new URL("docs#/models/list_models_v1_models_get", ROOT).href }, "GET /v1/models");
  footer.append(el("p", {}, "Descriptions, papers and readiness on this page come live from this gateway's ", api, "."));
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
  renderExample();
  renderFooter();
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
