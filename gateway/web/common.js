// Shared by every page: API addresses, the optional API key, JSON error bodies, safe DOM building.

/** The web root (where this file is served from), so the pages also work behind a path prefix. */
export const ROOT = new URL(".", import.meta.url);

/** The photo formats the gateway reads, for messages. */
export const ALL_TYPES_TEXT = "JPEG, PNG, WebP, TIFF, BMP or GIF";

const KEY_STORAGE = "colorizer.apiKey";

/** An absolute URL for an API path such as "/v1/models" or a result URL from the API. */
export function apiUrl(path) {
  return new URL(String(path).replace(/^\/+/, ""), ROOT).href;
}

export function getApiKey() {
  try {
    return sessionStorage.getItem(KEY_STORAGE) || "";
  } catch {
    return "";
  }
}

export function setApiKey(value) {
  try {
    if (value) sessionStorage.setItem(KEY_STORAGE, value);
    else sessionStorage.removeItem(KEY_STORAGE);
  } catch {
    // Storage may be disabled; the key then lasts for this page only.
  }
}

export function authHeaders() {
  const key = getApiKey();
  return key ? { Authorization: `Bearer ${key}` } : {};
}

/** An error the API answered with ({"error": {"code", "message"}}), or a network failure (status 0). */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

const TITLES = {
  unsupported_image: "This file is not a photo we can read",
  corrupt_image: "This photo is damaged",
  empty_file: "This file is empty",
  too_large: "This photo is too large",
  image_too_large: "This photo has too many pixels",
  busy: "The service is busy",
  timeout: "The model took too long",
  unauthorized: "An API key is needed",
  unknown_model: "Unknown model",
  invalid_option: "An option cannot be used",
  invalid_request: "The request was not understood",
  unavailable: "The model is not available right now",
  model_error: "The model failed",
  network: "The gateway cannot be reached",
  needs_reference: "This model needs a colour reference photo",
  bad_reference: "The colour reference cannot be used",
};

/** A short heading for an API error code. */
export function errorTitle(code) {
  return TITLES[code] || "Something went wrong";
}

/** Turn a status and a response body (text) into an ApiError with the API's own message. */
export function errorFromBody(status, statusText, text) {
  if (status === 0) {
    return new ApiError(0, "network", "No answer from the gateway. Check the connection and try again.");
  }
  try {
    const body = JSON.parse(text);
    if (body && body.error && body.error.message) {
      return new ApiError(status, body.error.code || "error", body.error.message);
    }
  } catch {
    // Not JSON (a proxy's error page, for example): fall through.
  }
  return new ApiError(status, "http_error", `The server answered ${status}${statusText ? ` ${statusText}` : ""}.`);
}

/** GET a JSON document from the API, throwing ApiError with the API's message on failure. */
export async function getJson(path) {
  let response;
  try {
    response = await fetch(apiUrl(path), { headers: { Accept: "application/json", ...authHeaders() } });
  } catch {
    throw errorFromBody(0, "", "");
  }
  const text = await response.text();
  if (!response.ok) throw errorFromBody(response.status, response.statusText, text);
  return JSON.parse(text);
}

/** The served models from GET /v1/models. */
export async function fetchModels() {
  const body = await getJson("/v1/models");
  return body.models || [];
}

/**
 * Build an element: el("a", {href: "x", class: "y"}, "text", child). Text is always set as text,
 * never parsed as HTML; attributes named on* are refused (the page uses addEventListener only).
 */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) throw new Error(`use addEventListener, not ${name}`);
    if (name === "class") node.className = value;
    else if (name === "dataset") Object.assign(node.dataset, value);
    else if (value === true) node.setAttribute(name, "");
    else node.setAttribute(name, String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

const ABBREVIATIONS = new Set(["al", "e.g", "i.e", "vs", "cf", "fig", "approx"]);

/** The first sentence of a model description, short enough for a one-line summary. */
export function summarise(description, limit = 140) {
  const text = String(description || "").trim();
  let sentence = text;
  for (const match of text.matchAll(/\.\s+(?=[A-Z0-9])/g)) {
    const word = text.slice(0, match.index).split(/\s/).pop().toLowerCase();
    if (!ABBREVIATIONS.has(word)) {
      sentence = text.slice(0, match.index);
      break;
    }
  }
  sentence = sentence.replace(/\.$/, "");
  if (sentence.length <= limit) return sentence;
  const head = sentence.slice(0, limit);
  const cut = Math.max(head.lastIndexOf(" ("), head.lastIndexOf("; "), head.lastIndexOf(", "));
  return `${(cut > 40 ? head.slice(0, cut) : head.slice(0, head.lastIndexOf(" "))).replace(/[,;:]$/, "")}…`;
}

export const FAMILIES = {
  wallner: "Wallner tutorial",
  zhang: "Zhang et al.",
  deoldify: "DeOldify",
  bigcolor: "BigColor",
  coloria: "Student project CNN",
};

/** Link to the page about a model's family (relative to the web root). */
export function familyHref(family, modelId) {
  const page = FAMILIES[family] ? `models/${family}.html` : "models/";
  return new URL(page + (modelId ? `#${modelId}` : ""), ROOT).href;
}

export const PROVENANCE = {
  trained: "trained here",
  imported: "published weights",
  untrained: "untrained weights",
};

/** Small badges for a model entry: readiness, weights, hints, seed. */
export function modelBadges(model) {
  const badges = [
    el(
      "span",
      { class: `badge ${model.ready ? "badge-ok" : "badge-warn"}`, title: model.ready ? "" : model.reason },
      model.ready ? "ready" : "not ready",
    ),
    el("span", { class: `badge badge-${model.provenance}` }, PROVENANCE[model.provenance] || model.provenance),
  ];
  if (model.supports_hints) badges.push(el("span", { class: "badge badge-feature" }, "colour hints"));
  if (model.supports_seed) badges.push(el("span", { class: "badge badge-feature" }, "seed"));
  return el("span", { class: "badges" }, badges);
}

/** "1.2 s" or "850 ms". */
export function formatLatency(ms) {
  return ms >= 1000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.round(ms)} ms`;
}

/** "3.4 MiB", "120 KiB". */
export function formatBytes(bytes) {
  if (bytes >= 2 ** 20) return `${(bytes / 2 ** 20).toFixed(1)} MiB`;
  if (bytes >= 1024) return `${Math.round(bytes / 1024)} KiB`;
  return `${bytes} bytes`;
}

/** Mark the current page in the site navigation. */
export function markNavigation() {
  const here = new URL(location.href);
  for (const link of document.querySelectorAll(".site-nav a")) {
    const target = new URL(link.href);
    const same =
      target.pathname === here.pathname ||
      (target.pathname.endsWith("/models/") && here.pathname.includes("/models/"));
    if (same) link.setAttribute("aria-current", "page");
  }
}
