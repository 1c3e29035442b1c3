// The colouriser page: choose photos, a model (or All Models), hints and seed; show before/after results.

import {
  ALL_TYPES_TEXT,
  ApiError,
  apiUrl,
  authHeaders,
  el,
  errorFromBody,
  errorTitle,
  familyHref,
  fetchModels,
  formatBytes,
  formatLatency,
  getApiKey,
  markNavigation,
  modelBadges,
  setApiKey,
  summarise,
} from "./common.js";
import { createCompare } from "./compare.js";

const ALL = "all";
const MAX_FILES = 5;
const MAX_BYTES = 25 * 2 ** 20;
const MAX_HINTS = 64;
const MAX_SEED = 2 ** 31 - 1;
const MEDIA_TYPES = new Set(["image/jpeg", "image/png", "image/webp", "image/tiff", "image/bmp", "image/x-ms-bmp", "image/gif"]);
const EXTENSIONS = new Set(["jpg", "jpeg", "jfif", "png", "webp", "tif", "tiff", "bmp", "gif"]);
const MODEL_REFRESH_MS = 4000;
const MODEL_REFRESH_TRIES = 30;

const $ = (id) => document.getElementById(id);

const state = {
  models: [],
  modelsError: null,
  modelRefreshes: 0,
  badgeSlots: new Map(), // model id -> the element holding its badges
  model: null, // a model id or ALL
  files: [], // {id, file, url, displayable (null until known), width, height, node}
  nextFileId: 1,
  hints: [], // {x, y, color}: x, y in [0, 1] from the top-left corner
  hintFileId: null,
  reference: null, // the colour reference photo: {file, url}
  request: null, // the request in flight: {xhr, started, timer, files, model}
  resultBlobs: [], // object URLs made for results (revoked when replaced)
  resultId: null,
};

// -- photos -------------------------------------------------------------------------------------

function extensionOf(name) {
  const dot = name.lastIndexOf(".");
  return dot < 0 ? "" : name.slice(dot + 1).toLowerCase();
}

/** Why a file cannot be sent, or "" when it can. */
function problemWith(file) {
  const knownType = MEDIA_TYPES.has(file.type);
  const unknownType = !file.type || file.type === "application/octet-stream";
  if (!knownType && !(unknownType && EXTENSIONS.has(extensionOf(file.name)))) {
    const kind = file.type ? ` (${file.type})` : "";
    return `${file.name}: this type of file${kind} cannot be colourised. Choose a ${ALL_TYPES_TEXT} photo.`;
  }
  if (file.size === 0) return `${file.name}: the file is empty.`;
  if (file.size > MAX_BYTES) {
    return `${file.name} is ${formatBytes(file.size)}; photos can be at most ${formatBytes(MAX_BYTES)}.`;
  }
  return "";
}

function addFiles(fileList) {
  const messages = [];
  for (const file of Array.from(fileList)) {
    const problem = problemWith(file);
    if (problem) {
      messages.push(problem);
      continue;
    }
    const duplicate = state.files.some(
      (f) => f.file.name === file.name && f.file.size === file.size && f.file.lastModified === file.lastModified,
    );
    if (duplicate) {
      messages.push(`${file.name} is already chosen.`);
      continue;
    }
    if (state.files.length >= MAX_FILES) {
      messages.push(`${file.name} was not added: at most ${MAX_FILES} photos can be colourised at once.`);
      continue;
    }
    const entry = { id: state.nextFileId++, file, url: URL.createObjectURL(file), displayable: null };
    entry.node = previewItem(entry);
    state.files.push(entry);
  }
  showFileMessages(messages);
  renderPreviews();
  update();
}

function removeFile(entry) {
  const index = state.files.indexOf(entry);
  if (index < 0) return;
  state.files.splice(index, 1);
  URL.revokeObjectURL(entry.url);
  showFileMessages([]);
  renderPreviews();
  update();
  const next = state.files[Math.min(index, state.files.length - 1)];
  (next ? next.node.querySelector(".preview-remove") : $("file-input")).focus();
}

function showFileMessages(messages) {
  const box = $("file-messages");
  box.replaceChildren(...messages.map((text) => el("p", { class: "message message-error" }, text)));
}

function previewItem(entry) {
  const name = entry.file.name;
  const details = el("span", { class: "preview-details" }, formatBytes(entry.file.size));
  const img = el("img", { src: entry.url, alt: `Preview of ${name}` });
  img.addEventListener("load", () => {
    entry.displayable = true;
    entry.width = img.naturalWidth;
    entry.height = img.naturalHeight;
    details.textContent = `${entry.width}×${entry.height} · ${formatBytes(entry.file.size)}`;
    if (entry.id === state.hintFileId) renderHintImage();
  });
  img.addEventListener("error", () => {
    entry.displayable = false;
    img.replaceWith(el("span", { class: "preview-fallback" }, `${extensionOf(name).toUpperCase()}: no preview here`));
    if (entry.id === state.hintFileId) renderHintImage();
  });
  const remove = el("button", { type: "button", class: "preview-remove", "aria-label": `Remove ${name}` }, "×");
  remove.addEventListener("click", () => removeFile(entry));
  return el(
    "li",
    { class: "preview" },
    el("div", { class: "preview-frame" }, img),
    el("span", { class: "preview-name", title: name }, name),
    details,
    remove,
  );
}

function renderPreviews() {
  $("previews").replaceChildren(...state.files.map((f) => f.node));
  const n = state.files.length;
  $("file-count").textContent = n ? `${n} of ${MAX_FILES} photos chosen.` : "";
}

// A drop zone: click to pick, drag and drop, highlighted while dragging; `take` receives the files.
function setUpDropZone(zone, input, clickable, take) {
  input.addEventListener("change", () => {
    if (input.files.length) take(input.files);
    input.value = "";
  });
  zone.addEventListener("click", (event) => {
    if (event.target === zone || event.target.closest(clickable)) input.click();
  });
  for (const type of ["dragenter", "dragover"]) {
    zone.addEventListener(type, (event) => {
      event.preventDefault();
      zone.classList.add("dragging");
    });
  }
  for (const type of ["dragleave", "dragend", "drop"]) {
    zone.addEventListener(type, () => zone.classList.remove("dragging"));
  }
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    event.stopPropagation();
    if (event.dataTransfer && event.dataTransfer.files.length) take(event.dataTransfer.files);
  });
}

function setUpUpload() {
  setUpDropZone($("dropzone"), $("file-input"), ".dropzone-icon, .dropzone-or", addFiles);
  // A photo dropped beside the zone must not replace the page.
  window.addEventListener("dragover", (event) => event.preventDefault());
  window.addEventListener("drop", (event) => event.preventDefault());
  document.addEventListener("paste", (event) => {
    const files = event.clipboardData ? Array.from(event.clipboardData.files) : [];
    if (files.length) addFiles(files);
  });
}

// -- colour reference ---------------------------------------------------------------------------

function setReference(file) {
  const problem = file ? problemWith(file) : "";
  $("reference-messages").replaceChildren(...(problem ? [el("p", { class: "message message-error" }, problem)] : []));
  if (problem) return;
  if (state.reference) URL.revokeObjectURL(state.reference.url);
  state.reference = file ? { file, url: URL.createObjectURL(file) } : null;
  $("reference-chosen").hidden = !state.reference;
  $("reference-image").src = state.reference ? state.reference.url : "";
  $("reference-name").textContent = state.reference ? file.name : "";
  update();
}

function setUpReference() {
  const input = $("reference-input");
  setUpDropZone($("reference-dropzone"), input, ".dropzone-or", (files) => setReference(files[0]));
  $("reference-remove").addEventListener("click", () => {
    setReference(null);
    input.focus();
  });
}

function referenceCard(headingLevel) {
  return el(
    "article",
    { class: "card card-original card-reference" },
    el(headingLevel, { class: "card-title" }, "Colour reference"),
    el("img", { class: "original-image", src: state.reference.url, alt: `${state.reference.file.name}, the colour reference` }),
  );
}

// -- models -------------------------------------------------------------------------------------

function selectedModels() {
  if (state.model === ALL) return state.models;
  return state.models.filter((m) => m.id === state.model);
}

function modelOption(id, name, description, extra) {
  const inputId = `model-${id}`;
  const input = el("input", {
    type: "radio",
    name: "model",
    value: id,
    id: inputId,
    class: "model-radio",
    "aria-describedby": `${inputId}-desc`,
    checked: state.model === id,
  });
  input.addEventListener("change", () => chooseModel(id));
  const badges = extra.badges || el("span", { class: "badges" });
  state.badgeSlots.set(id, badges);
  return el(
    "div",
    { class: `model-option${id === ALL ? " model-option-all" : ""}` },
    input,
    el(
      "label",
      { for: inputId, class: "model-card" },
      el("span", { class: "model-name" }, name),
      badges,
      el("span", { class: "model-desc", id: `${inputId}-desc` }, description),
    ),
    extra.about || null,
  );
}

function renderModels() {
  const list = $("model-list");
  state.badgeSlots.clear();
  const n = state.models.length;
  const options = [
    modelOption(ALL, "All Models", `Every model on the same photo, side by side (${n} models). Takes exactly one photo.`, {}),
    ...state.models.map((m) =>
      modelOption(m.id, m.id, summarise(m.description), {
        badges: modelBadges(m),
        about: el(
          "a",
          { class: "model-about", href: familyHref(m.family, m.id) },
          "About",
          el("span", { class: "visually-hidden" }, ` ${m.id}`),
        ),
      }),
    ),
  ];
  list.replaceChildren(...options);
  list.setAttribute("aria-busy", "false");
}

/** Refresh readiness badges in place (keeps keyboard focus on the radios). */
function refreshBadges(models) {
  const sameSet = models.length === state.models.length && models.every((m, i) => m.id === state.models[i].id);
  state.models = models;
  if (!sameSet) {
    renderModels();
    return;
  }
  for (const m of models) {
    const fresh = modelBadges(m);
    state.badgeSlots.get(m.id)?.replaceWith(fresh);
    state.badgeSlots.set(m.id, fresh);
  }
}

function chooseModel(id) {
  state.model = id;
  const url = new URL(location.href);
  url.searchParams.set("model", id);
  history.replaceState(null, "", url);
  update();
}

async function loadModels() {
  const box = $("model-error");
  try {
    const models = await fetchModels();
    state.modelsError = null;
    box.hidden = true;
    if (state.models.length) {
      refreshBadges(models);
    } else {
      state.models = models;
      const wanted = new URLSearchParams(location.search).get("model");
      state.model = wanted && (wanted === ALL || models.some((m) => m.id === wanted)) ? wanted : ALL;
      renderModels();
    }
  } catch (error) {
    state.modelsError = error;
    box.replaceChildren(
      el("p", { class: "alert-title" }, errorTitle(error.code)),
      el("p", {}, error.message),
      error.code === "unauthorized" ? el("p", {}, "Enter the key under More options, then the list reloads.") : null,
    );
    box.hidden = false;
    if (error.code === "unauthorized") document.querySelector(".more-options").open = true;
    $("model-list").replaceChildren(el("p", { class: "help" }, "No models to show."));
  }
  update();
  const waiting = state.models.some((m) => !m.ready);
  if ((waiting || state.modelsError?.status === 0) && state.modelRefreshes < MODEL_REFRESH_TRIES) {
    state.modelRefreshes += 1;
    setTimeout(loadModels, MODEL_REFRESH_MS);
  }
}

// -- colour hints -------------------------------------------------------------------------------

function hintFile() {
  return state.files.find((f) => f.id === state.hintFileId) || state.files[0] || null;
}

function renderHintImage() {
  const entry = hintFile();
  state.hintFileId = entry ? entry.id : null;
  const image = $("hints-image");
  const empty = $("hints-empty");
  const canvas = $("hints-canvas");
  if (entry && entry.displayable !== false) {
    if (image.getAttribute("src") !== entry.url) image.src = entry.url;
    image.alt = `${entry.file.name}: click to place a colour point`;
    image.hidden = false;
    empty.hidden = true;
    canvas.classList.add("has-image");
  } else {
    image.removeAttribute("src");
    image.hidden = true;
    empty.hidden = false;
    empty.textContent = entry
      ? "No preview of this file here: add points with the button and set their position in the list."
      : "Add a photo to place hints on it.";
    canvas.classList.remove("has-image");
  }
  const select = $("hints-file");
  $("hints-file-label").hidden = state.files.length < 2;
  select.replaceChildren(
    ...state.files.map((f) => el("option", { value: f.id, selected: f.id === state.hintFileId }, f.file.name)),
  );
  renderMarkers();
}

function renderMarkers() {
  const canvas = $("hints-canvas");
  canvas.querySelectorAll(".hint-marker").forEach((m) => m.remove());
  if (!canvas.classList.contains("has-image")) return;
  state.hints.forEach((hint, i) => {
    const marker = el("span", { class: "hint-marker", "aria-hidden": "true" }, String(i + 1));
    placeMarker(marker, hint);
    canvas.append(marker);
  });
}

function placeMarker(marker, hint) {
  marker.style.setProperty("--x", String(hint.x));
  marker.style.setProperty("--y", String(hint.y));
  marker.style.setProperty("--colour", hint.color);
}

function addHint(x, y) {
  if (state.hints.length >= MAX_HINTS) return;
  const clamp = (v) => Math.min(1, Math.max(0, v));
  state.hints.push({ x: clamp(x), y: clamp(y), color: $("hint-colour").value });
  renderHints();
}

function removeHint(index) {
  state.hints.splice(index, 1);
  renderHints();
  const rows = $("hint-list").querySelectorAll(".hint-remove");
  (rows[Math.min(index, rows.length - 1)] || $("hint-add")).focus();
}

function percentField(label, value, onChange) {
  const input = el("input", { type: "number", min: 0, max: 100, step: 1, value: Math.round(value * 100), class: "hint-percent" });
  input.addEventListener("input", () => {
    const number = Number(input.value);
    if (input.value !== "" && Number.isFinite(number)) onChange(Math.min(100, Math.max(0, number)) / 100);
  });
  return el("label", { class: "field field-inline field-small" }, label, input);
}

function renderHints() {
  const list = $("hint-list");
  list.replaceChildren(
    ...state.hints.map((hint, i) => {
      const n = i + 1;
      const swatch = el("span", { class: "hint-swatch", "aria-hidden": "true" }, String(n));
      swatch.style.setProperty("--colour", hint.color);
      const colour = el("input", { type: "color", value: hint.color, "aria-label": `Colour of point ${n}` });
      colour.addEventListener("input", () => {
        hint.color = colour.value;
        swatch.style.setProperty("--colour", hint.color);
        renderMarkers();
      });
      const remove = el("button", { type: "button", class: "button button-small hint-remove", "aria-label": `Remove point ${n}` }, "Remove");
      remove.addEventListener("click", () => removeHint(i));
      return el(
        "li",
        { class: "hint-row" },
        swatch,
        colour,
        percentField(el("span", {}, "x ", el("span", { class: "visually-hidden" }, `of point ${n}, `), "%"), hint.x, (v) => {
          hint.x = v;
          renderMarkers();
        }),
        percentField(el("span", {}, "y ", el("span", { class: "visually-hidden" }, `of point ${n}, `), "%"), hint.y, (v) => {
          hint.y = v;
          renderMarkers();
        }),
        remove,
      );
    }),
  );
  $("hint-none").hidden = state.hints.length > 0;
  $("hint-clear").disabled = state.hints.length === 0;
  $("hint-add").disabled = state.hints.length >= MAX_HINTS;
  renderMarkers();
}

function hintsJson() {
  const round = (v) => Math.round(v * 10000) / 10000;
  return JSON.stringify(state.hints.map((h) => ({ x: round(h.x), y: round(h.y), color: h.color })));
}

function setUpHints() {
  const canvas = $("hints-canvas");
  canvas.addEventListener("click", (event) => {
    const image = $("hints-image");
    if (image.hidden) return;
    const box = image.getBoundingClientRect();
    const x = (event.clientX - box.left) / box.width;
    const y = (event.clientY - box.top) / box.height;
    if (x < 0 || x > 1 || y < 0 || y > 1) return;
    addHint(x, y);
  });
  $("hint-add").addEventListener("click", () => addHint(0.5, 0.5));
  $("hint-clear").addEventListener("click", () => {
    state.hints = [];
    renderHints();
    $("hint-add").focus();
  });
  $("hints-file").addEventListener("change", (event) => {
    state.hintFileId = Number(event.target.value);
    renderHintImage();
  });
}

// -- seed and options ---------------------------------------------------------------------------

function readInteger(id, min, max, what) {
  const input = $(id);
  const raw = input.value.trim();
  if (raw === "") return { value: null };
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min || value > max) {
    return { error: `${what} must be a whole number from ${min} to ${max}.`, input };
  }
  return { value };
}

function randomSeed() {
  const word = new Uint32Array(1);
  crypto.getRandomValues(word);
  return word[0] % (MAX_SEED + 1);
}

function setUpOptions() {
  $("try-another").addEventListener("click", () => {
    $("seed").value = String(randomSeed());
    if (!$("run").disabled) run();
  });
  const key = $("api-key");
  key.value = getApiKey();
  key.addEventListener("change", () => {
    setApiKey(key.value.trim());
    if (state.modelsError) {
      state.modelRefreshes = 0;
      loadModels();
    }
  });
}

// -- state of the form --------------------------------------------------------------------------

function update() {
  const chosen = selectedModels();
  const hintModels = chosen.filter((m) => m.supports_hints);
  const seedModels = chosen.filter((m) => m.supports_seed);
  const referenceModels = chosen.filter((m) => m.supports_reference);
  const all = state.model === ALL;

  $("reference-panel").hidden = referenceModels.length === 0;
  $("reference-models").textContent = referenceModels.length ? referenceModels.map((m) => m.id).join(", ") : "this model";
  $("reference-heading").textContent = all ? "Colour reference (for the models that take one)" : "Colour reference";

  $("hints-panel").hidden = hintModels.length === 0;
  $("hints-models").textContent = hintModels.length ? hintModels.map((m) => m.id).join(", ") : "models that take them";
  $("hints-heading").textContent = all ? "Colour hints (for the models that take them)" : "Colour hints";
  $("seed-panel").hidden = seedModels.length === 0;
  $("seed-models").textContent = all ? seedModels.map((m) => m.id).join(", ") : (seedModels[0]?.id ?? "This model");
  $("options-panel").classList.toggle(
    "options-plain",
    hintModels.length === 0 && seedModels.length === 0 && referenceModels.length === 0,
  );
  if (!$("hints-panel").hidden) renderHintImage();

  const n = state.files.length;
  let reason = "";
  if (state.request) reason = "Working…";
  else if (state.modelsError) reason = "The model list could not be loaded.";
  else if (!state.models.length) reason = "Waiting for the model list…";
  else if (!n) reason = "Add a photo first.";
  else if (!state.model) reason = "Choose a model.";
  else if (!all && !state.reference && chosen.some((m) => m.needs_reference)) {
    reason = `${state.model} needs a colour reference photo: add one under Options.`;
  }
  else if (all && n !== 1) {
    reason = `All Models takes exactly one photo: remove ${n - 1} ${n - 1 === 1 ? "photo" : "photos"} or pick a single model.`;
  }
  $("run").disabled = Boolean(reason);
  const photos = `${n} ${n === 1 ? "photo" : "photos"}`;
  $("run-help").textContent = reason || (all ? `${photos} through all ${state.models.length} models.` : `${photos} with ${state.model}.`);
  $("run-help").classList.toggle("help-warn", all && n > 1);
}

// -- the request --------------------------------------------------------------------------------

function showError(error) {
  const box = $("error");
  $("error-title").textContent = errorTitle(error.code);
  $("error-message").textContent = error.message;
  box.dataset.code = error.code;
  box.hidden = false;
  if (error.code === "unauthorized") document.querySelector(".more-options").open = true;
  box.scrollIntoView({ block: "nearest" });
}

function hideError() {
  $("error").hidden = true;
}

function formData(models) {
  const data = new FormData();
  for (const entry of state.files) data.append("images", entry.file, entry.file.name);
  data.append("model", state.model);
  data.append("format", $("format").value);
  if (models.some((m) => m.supports_hints) && state.hints.length) data.append("hints", hintsJson());
  if (models.some((m) => m.supports_reference) && state.reference) {
    data.append("reference", state.reference.file, state.reference.file.name);
  }
  return data;
}

function run() {
  if ($("run").disabled || state.request) return;
  hideError();
  const models = selectedModels();
  const seed = models.some((m) => m.supports_seed) ? readInteger("seed", 0, MAX_SEED, "The seed") : { value: null };
  const size = readInteger("size", 32, 1024, "The working size");
  for (const check of [seed, size]) {
    if (check.error) {
      showError(new ApiError(0, "invalid_option", check.error));
      if (check.input.closest("details")) check.input.closest("details").open = true;
      check.input.focus();
      return;
    }
  }
  const data = formData(models);
  if (seed.value !== null) data.append("seed", String(seed.value));
  if (size.value !== null) data.append("size", String(size.value));

  const xhr = new XMLHttpRequest();
  const referenced = models.some((m) => m.supports_reference) && Boolean(state.reference);
  const request = { xhr, started: performance.now(), files: [...state.files], model: state.model, models, referenced };
  state.request = request;
  xhr.open("POST", apiUrl("/v1/colorize"));
  xhr.setRequestHeader("Accept", "application/json");
  for (const [name, value] of Object.entries(authHeaders())) xhr.setRequestHeader(name, value);
  xhr.upload.addEventListener("progress", (event) => {
    if (event.lengthComputable) showProgress(`Uploading… ${Math.round((100 * event.loaded) / event.total)}%`, (100 * event.loaded) / event.total);
  });
  xhr.upload.addEventListener("load", () => showProgress(workingText(request), null));
  xhr.addEventListener("load", () => {
    finishRequest();
    if (xhr.status >= 200 && xhr.status < 300) {
      try {
        renderResults(JSON.parse(xhr.responseText), request);
      } catch {
        showError(new ApiError(xhr.status, "http_error", "The gateway's answer could not be read."));
      }
    } else {
      showError(errorFromBody(xhr.status, xhr.statusText, xhr.responseText));
    }
  });
  xhr.addEventListener("error", () => {
    finishRequest();
    showError(errorFromBody(0, "", ""));
  });
  xhr.addEventListener("abort", () => {
    finishRequest();
    $("run-help").textContent = "Cancelled.";
  });
  showProgress("Uploading…", 0);
  request.timer = setInterval(() => {
    $("progress-time").textContent = `${((performance.now() - request.started) / 1000).toFixed(1)} s`;
  }, 200);
  update();
  xhr.send(data);
}

function workingText(request) {
  const photos = request.files.length === 1 ? "the photo" : `${request.files.length} photos`;
  if (request.model === ALL) return `Colourising ${photos} with ${request.models.length} models at once…`;
  return `Colourising ${photos} with ${request.model}…`;
}

function showProgress(text, percent) {
  const bar = $("progress-bar");
  if (percent === null) bar.removeAttribute("value");
  else bar.value = percent;
  $("progress-text").textContent = text;
  $("progress").hidden = false;
}

function finishRequest() {
  if (state.request) clearInterval(state.request.timer);
  state.request = null;
  $("progress").hidden = true;
  update();
}

// -- results ------------------------------------------------------------------------------------

function revokeResultBlobs() {
  state.resultBlobs.forEach((url) => URL.revokeObjectURL(url));
  state.resultBlobs = [];
}

/** Point an image and a download link at a result; with an API key the image is fetched with it. */
function attachResult(img, link, url) {
  if (!getApiKey()) {
    img.src = url;
    link.href = url;
    return;
  }
  fetch(url, { headers: authHeaders() })
    .then((response) => (response.ok ? response.blob() : Promise.reject(new Error(response.statusText))))
    .then((blob) => {
      const local = URL.createObjectURL(blob);
      state.resultBlobs.push(local);
      img.src = local;
      link.href = local;
    })
    .catch(() => img.replaceWith(el("p", { class: "message message-error" }, "This result could not be loaded.")));
}

function originalCard(file, entry, headingLevel) {
  const body =
    entry && entry.displayable !== false
      ? el("img", { class: "original-image", src: entry.url, alt: `${file.filename}, original` })
      : el("p", { class: "preview-fallback" }, "No preview of the original in this browser.");
  return el(
    "article",
    { class: "card card-original" },
    el(headingLevel, { class: "card-title" }, "Original"),
    body,
    el("p", { class: "card-meta" }, `${file.width}×${file.height}`),
  );
}

function outputCard(file, output, entry, { headingLevel, showFilename }) {
  const model = state.models.find((m) => m.id === output.model);
  const title = el(
    headingLevel,
    { class: "card-title" },
    showFilename ? el("span", { class: "card-file" }, file.filename) : null,
    el("a", { href: familyHref(model ? model.family : "", output.model) }, output.model),
  );
  if (output.status !== "ok" || !output.url) {
    const error = output.error || { code: output.status, message: "No result." };
    return el(
      "article",
      { class: "card card-error", dataset: { model: output.model, status: output.status } },
      title,
      el("p", { class: "status status-error" }, output.status === "timeout" ? "Timed out" : "Failed", ` after ${formatLatency(output.latency_ms)}`),
      el("p", { class: "alert-title" }, errorTitle(error.code)),
      el("p", {}, error.message),
    );
  }
  const url = apiUrl(output.url);
  const name = decodeURIComponent(url.split("/").pop());
  const greyBefore = !entry || entry.displayable === false;
  const compare = createCompare({
    beforeSrc: greyBefore ? undefined : entry.url,
    afterSrc: undefined,
    beforeAlt: `${file.filename}, original`,
    afterAlt: `${file.filename}, coloured by ${output.model}`,
    label: `Compare ${file.filename} before and after ${output.model}`,
    width: file.width,
    height: file.height,
    greyBefore,
  });
  const after = compare.querySelector(".compare-after");
  const before = compare.querySelector(".compare-before");
  const extension = name.split(".").pop().toUpperCase();
  const link = el(
    "a",
    { class: "button button-secondary download", download: name },
    `Download ${extension}`,
    el("span", { class: "visually-hidden" }, ` of ${file.filename} by ${output.model}`),
  );
  attachResult(after, link, url);
  if (greyBefore) after.addEventListener("load", () => (before.src = after.src), { once: true });
  return el(
    "article",
    { class: "card card-result", dataset: { model: output.model, status: output.status } },
    title,
    compare,
    el(
      "div",
      { class: "card-footer" },
      el("p", { class: "card-meta" }, `${formatLatency(output.latency_ms)} · ${file.width}×${file.height}`),
      link,
    ),
  );
}

function renderResults(body, request) {
  revokeResultBlobs();
  state.resultId = body.id;
  const container = $("results-body");
  const seconds = ((performance.now() - request.started) / 1000).toFixed(1);
  const until = new Date(body.expires_at * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  const files = body.files || [];
  const sections = [];
  if (request.model === ALL) {
    for (const [i, file] of files.entries()) {
      const entry = request.files[i];
      const ok = file.outputs.filter((o) => o.status === "ok").length;
      sections.push(
        el(
          "section",
          { class: "result-file", "aria-label": `${file.filename}: all models` },
          el("h3", {}, `${file.filename} · ${ok} of ${file.outputs.length} models succeeded`),
          el(
            "div",
            { class: "result-grid result-grid-all" },
            originalCard(file, entry, "h4"),
            request.referenced && state.reference ? referenceCard("h4") : null,
            file.outputs.map((o) => outputCard(file, o, entry, { headingLevel: "h4", showFilename: false })),
          ),
        ),
      );
    }
  } else {
    sections.push(
      el(
        "div",
        { class: `result-grid${files.length === 1 ? " result-grid-one" : ""}` },
        files.map((file, i) => outputCard(file, file.outputs[0], request.files[i], { headingLevel: "h3", showFilename: true })),
        request.referenced && state.reference ? referenceCard("h3") : null,
      ),
    );
  }
  container.replaceChildren(...sections);
  const remove = el("button", { type: "button", class: "button button-small button-secondary" }, "Delete from the server now");
  remove.addEventListener("click", () => deleteResults(body.id, remove));
  const what = request.model === ALL ? "All Models" : request.model;
  $("results-meta").replaceChildren(
    `${what} · ${files.length} ${files.length === 1 ? "photo" : "photos"} · done in ${seconds} s · downloads work until ${until}. `,
    remove,
  );
  const section = $("results");
  section.hidden = false;
  section.scrollIntoView({ behavior: "smooth", block: "start" });
  $("results-heading").focus({ preventScroll: true });
}

async function deleteResults(id, button) {
  button.disabled = true;
  try {
    const response = await fetch(apiUrl(`/v1/results/${encodeURIComponent(id)}`), { method: "DELETE", headers: authHeaders() });
    if (!response.ok && response.status !== 404) throw errorFromBody(response.status, response.statusText, await response.text());
    $("results-body").replaceChildren(el("p", { class: "help" }, "The results were deleted from the server."));
    button.remove();
  } catch (error) {
    button.disabled = false;
    showError(error instanceof ApiError ? error : errorFromBody(0, "", ""));
  }
}

// -- start --------------------------------------------------------------------------------------

function start() {
  markNavigation();
  setUpUpload();
  setUpHints();
  setUpReference();
  setUpOptions();
  $("colorize-form").addEventListener("submit", (event) => {
    event.preventDefault();
    run();
  });
  $("cancel").addEventListener("click", () => state.request?.xhr.abort());
  renderHints();
  update();
  loadModels();
}

start();
