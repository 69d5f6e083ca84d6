// Render a CDS Hooks response as an EHR would: cards (indicator, summary, source, detail,
// links, suggestions, override reasons), the per-payer criteria checklist from
// card.extension["dli-hpc-cds.evaluations"], and the CRD coverage information of each
// systemAction in plain words. Every string goes in as text (textContent), never as HTML.

import { renderMarkdown, safeUrl } from "./markdown.js";

const EVALUATIONS = "dli-hpc-cds.evaluations";
const COVERAGE_INFO = "http://hl7.org/fhir/us/davinci-crd/StructureDefinition/ext-coverage-information";
// The one status vocabulary (cds_service/core/card_text.py STATUS_WORDS): the word carries the
// meaning, the mark only decorates (it renders in any font).
export const STATUS = {
  met: ["✓", "Met"],
  "not-met": ["✗", "Not met"],
  unknown: ["?", "Unknown"],
  "not-needed": ["–", "Not needed"],
  "not-applicable": ["–", "Not applicable"],
};
/** The status a criterion is shown with: "not-needed" for an any_of branch another one settles. */
export const statusOf = (criterion) => (criterion.notNeeded ? "not-needed" : criterion.status);
const DETERMINATION = {
  "meets-criteria": "Meets criteria",
  "does-not-meet-criteria": "Does not meet criteria",
  "needs-information": "Needs information",
  "not-addressed": "Not addressed",
};
const COVERED = {
  covered: "Covered",
  "not-covered": "Not covered",
  conditional: "Covered only if conditions are met",
};
const PA_NEEDED = {
  "auth-needed": "prior authorization is required",
  "no-auth": "no prior authorization is needed",
  "satisfied": "prior authorization is already satisfied",
  "performpa": "the payer will perform prior authorization itself",
  conditional: "prior authorization may be required: the plan decides",
};
const DOC_NEEDED = {
  clinical: "clinical documentation is needed",
  admin: "administrative documentation is needed",
  both: "clinical and administrative documentation is needed",
  conditional: "documentation may be needed",
  patient: "documentation from the patient is needed",
};

/** A DOM element with a class and text (text is always set as text). */
export function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

function section(title, className) {
  const box = el("section", `result-section ${className}`);
  box.append(el("h2", null, title));
  return box;
}

// --- cards -------------------------------------------------------------------------------
/** Conformance problems an integrator should see (CDS Hooks 2.0 §card-attributes). */
function cardProblems(card) {
  const problems = [];
  if (typeof card.summary !== "string" || !card.summary) problems.push("summary is required");
  else if (card.summary.length >= 140) problems.push(`summary has ${card.summary.length} characters (must be < 140)`);
  if (!["info", "warning", "critical"].includes(card.indicator))
    problems.push(`indicator ${JSON.stringify(card.indicator)} is not info, warning or critical`);
  if (!card.source || typeof card.source.label !== "string") problems.push("source.label is required");
  if (card.suggestions && !card.selectionBehavior) problems.push("selectionBehavior is required with suggestions");
  for (const reason of card.overrideReasons ?? []) if (!reason.display) problems.push("every override reason needs a display");
  for (const link of card.links ?? [])
    if (!link.label || !link.url || !["absolute", "smart"].includes(link.type))
      problems.push("every link needs label, url and type absolute or smart");
  return problems;
}

function renderLinks(card) {
  const box = el("div", "card-links");
  for (const link of card.links ?? []) {
    const url = safeUrl(link.url);
    if (url && link.type !== "smart") {
      const a = el("a", "card-link", link.label ?? link.url);
      a.href = url;
      a.target = "_blank";
      a.rel = "noopener noreferrer";
      box.append(a);
    } else {
      const why = link.type === "smart" ? "SMART app: the EHR launches it" : "link not shown: unsafe URL";
      const span = el("span", "card-link disabled", `${link.label ?? "link"} (${why})`);
      if (link.type === "smart") span.dataset.smart = "true";
      box.append(span);
    }
  }
  return box;
}

function renderSuggestions(card) {
  const box = el("div", "card-suggestions");
  for (const suggestion of card.suggestions ?? []) {
    const button = el("button", "suggestion", `${suggestion.isRecommended ? "★ " : ""}${suggestion.label ?? "(no label)"}`);
    button.type = "button";
    const actions = (suggestion.actions ?? []).map((a) => `${a.type}: ${a.description ?? ""}`).join("; ");
    button.title = actions || "no actions";
    button.addEventListener("click", () => {
      button.classList.add("accepted");
      button.textContent = `Accepted: ${suggestion.label ?? ""} (the sandbox applies no actions)`;
    });
    box.append(button);
  }
  return box;
}

function renderOverride(card, article) {
  const box = el("div", "card-override");
  const select = el("select", "override-reason");
  select.append(el("option", null, "Dismiss with a reason…"));
  for (const reason of card.overrideReasons ?? []) select.append(el("option", null, reason.display ?? reason.code));
  const button = el("button", "override-dismiss", "Dismiss");
  button.type = "button";
  button.addEventListener("click", () => {
    const chosen = select.selectedIndex > 0 ? select.value : "no reason given";
    article.classList.add("dismissed");
    box.replaceChildren(el("span", "dismissed-note", `Dismissed: ${chosen}`));
  });
  box.append(select, button);
  return box;
}

function renderCard(card) {
  const indicator = ["info", "warning", "critical"].includes(card.indicator) ? card.indicator : "unknown";
  const article = el("article", `cds-card indicator-${indicator}`);
  article.dataset.indicator = indicator;
  const head = el("header", "card-head");
  head.append(el("span", "card-indicator", indicator), el("h3", "card-summary", card.summary ?? "(no summary)"));
  article.append(head);
  const source = card.source ?? {};
  const topic = source.topic?.display ? ` · ${source.topic.display}` : "";
  article.append(el("div", "card-source", `Source: ${source.label ?? "(none)"}${topic}`));
  if (card.detail) {
    const detail = el("div", "card-detail");
    detail.append(renderMarkdown(card.detail));
    article.append(detail);
  }
  if (card.links?.length) article.append(renderLinks(card));
  if (card.suggestions?.length) article.append(renderSuggestions(card));
  if (card.overrideReasons?.length) article.append(renderOverride(card, article));
  const problems = cardProblems(card);
  if (problems.length) {
    const list = el("ul", "card-problems");
    for (const problem of problems) list.append(el("li", null, problem));
    article.append(list);
  }
  return article;
}

// --- criteria checklist / payer comparison -------------------------------------------------
function evaluationsOf(response) {
  return (response.cards ?? []).flatMap((card) => card?.extension?.[EVALUATIONS] ?? []);
}

function renderChecklist(evaluation) {
  const list = el("ul", "checklist");
  for (const criterion of evaluation.criteria ?? []) {
    const status = statusOf(criterion);
    const [mark, word] = STATUS[status] ?? ["·", status];
    const item = el("li", `criterion status-${status}`);
    item.dataset.status = status;
    item.dataset.criterion = criterion.id;
    const badge = el("span", "status-mark", mark);
    badge.setAttribute("aria-hidden", "true");
    const text = el("span", "criterion-text");
    text.append(el("strong", "status-word", `${word}: `), criterion.text);
    item.append(badge, text);
    if (criterion.citation) item.append(el("span", "citation", criterion.citation));
    list.append(item);
  }
  return list;
}

/** One table per ordered service: a column per payer policy, side by side. */
function renderComparison(response) {
  const evaluations = evaluationsOf(response);
  if (!evaluations.length) return null;
  const groups = new Map();
  for (const evaluation of evaluations) {
    const key = `${evaluation.service} · ${evaluation.order}`;
    if (!groups.has(key)) groups.set(key, []);
    groups.get(key).push(evaluation);
  }
  const several = evaluations.length > 1;
  const box = section(several ? "Payer comparison" : "Criteria checklist", "comparison-section");
  for (const [key, group] of groups) {
    box.append(el("h3", "comparison-title", key));
    const table = el("table", "comparison");
    table.dataset.service = group[0].service;
    const headRow = el("tr");
    const determinationRow = el("tr", "determinations");
    const criteriaRow = el("tr", "criteria");
    for (const evaluation of group) {
      const th = el("th", null);
      th.append(el("div", "payer-name", evaluation.payer), el("div", "policy-id", evaluation.policyId));
      headRow.append(th);
      const cell = el("td", `determination determination-${evaluation.determination}`,
        DETERMINATION[evaluation.determination] ?? evaluation.determination);
      cell.dataset.policy = evaluation.policyId;
      determinationRow.append(cell);
      const criteria = el("td", "criteria-cell");
      criteria.dataset.policy = evaluation.policyId;
      criteria.append(evaluation.criteria?.length ? renderChecklist(evaluation) : el("p", "none", "No criteria for this service."));
      criteriaRow.append(criteria);
    }
    const thead = el("thead");
    thead.append(headRow);
    const tbody = el("tbody");
    tbody.append(determinationRow, criteriaRow);
    table.append(thead, tbody);
    const scroller = el("div", "table-scroll");
    scroller.append(table);
    box.append(scroller);
  }
  return box;
}

// --- systemActions: CRD coverage information ------------------------------------------------
function value(part) {
  const key = Object.keys(part).find((k) => k.startsWith("value"));
  return key ? part[key] : undefined;
}

/** Plain-words sentences for one ext-coverage-information extension. */
function coverageSentences(info) {
  const parts = info.extension ?? [];
  const get = (url) => parts.filter((p) => p.url === url).map(value);
  const [covered] = get("covered");
  const [pa] = get("pa-needed");
  const [doc] = get("doc-needed");
  const [infoNeeded] = get("info-needed");
  const [billing] = get("billingCode");
  const [coverage] = get("coverage");
  const [date] = get("date");
  const [assertion] = get("coverage-assertion-id");
  const sentences = [
    `${COVERED[covered] ?? `Coverage: ${covered}`}${billing ? ` (billing code ${billing.code})` : ""}` +
      `${coverage?.reference ? ` under ${coverage.reference}` : ""}.`,
  ];
  if (pa) sentences.push(`${capital(PA_NEEDED[pa] ?? `prior authorization: ${pa}`)}.`);
  if (doc) sentences.push(`${capital(DOC_NEEDED[doc] ?? `documentation: ${doc}`)}.`);
  // info-needed OTH only says "see the details"; on a covered order it is the prior-authorization
  // question, so the sentence names what is open rather than "needs more information".
  const details = parts.filter((p) => p.url === "detail")
    .map((d) => (d.extension ?? []).filter((p) => p.url === "value").map(value)[0]).filter(Boolean);
  if (infoNeeded && !details.length) sentences.push("The payer needs more information to decide.");
  for (const text of details) sentences.push(`Still open: ${text}`);
  for (const reason of get("reason")) if (reason?.text) sentences.push(`Reason: ${reason.text}`);
  if (date || assertion) sentences.push(`Assessed ${date ?? "(no date)"}; assertion ${assertion ?? "(no id)"}.`);
  return sentences;
}

function capital(text) {
  return text.charAt(0).toUpperCase() + text.slice(1);
}

function renderCoverage(response) {
  const actions = response.systemActions ?? [];
  if (!actions.length) return null;
  const box = section("Coverage information (systemActions)", "coverage-section");
  for (const action of actions) {
    const resource = action.resource ?? {};
    const infos = (resource.extension ?? []).filter((x) => x.url === COVERAGE_INFO);
    const item = el("div", "coverage-info");
    item.append(el("h3", null, `${action.type ?? "?"} ${resource.resourceType ?? "?"}/${resource.id ?? "?"}`));
    if (action.description) item.append(el("p", "action-description", action.description));
    if (!infos.length) item.append(el("p", "coverage-none", "No coverage information on this action."));
    for (const info of infos) {
      const list = el("ul", "coverage-sentences");
      for (const sentence of coverageSentences(info)) list.append(el("li", null, sentence));
      item.append(list);
    }
    box.append(item);
  }
  return box;
}

// --- the whole response ----------------------------------------------------------------------
function rawPanel(title, data) {
  const details = el("details", "raw");
  details.append(el("summary", null, title), el("pre", null, JSON.stringify(data, null, 2)));
  return details;
}

/**
 * Render into `container`: status / error, coverage information, cards, comparison, raw JSON.
 * `exchange` = {status, response, request?, url?}.
 */
export function renderExchange(container, exchange) {
  container.replaceChildren();
  const { status, response, request, url } = exchange;
  if (status !== 200) {
    const diagnostics = response?.issue?.map((i) => i.diagnostics).join("; ") ?? "";
    container.append(el("div", "error", `HTTP ${status}${diagnostics ? `: ${diagnostics}` : ""}`));
  } else if (!response || !Array.isArray(response.cards)) {
    container.append(el("div", "error", "Not a CDS Hooks response: it needs a \"cards\" array."));
  } else {
    // The cards first, as the EHR shows them to the clinician; then the coverage information.
    const cards = section(`Cards (${response.cards.length})`, "cards-section");
    if (!response.cards.length) cards.append(el("p", "none", "No cards: no guidance for these orders."));
    for (const card of response.cards) cards.append(renderCard(card ?? {}));
    container.append(cards);
    const coverage = renderCoverage(response);
    if (coverage) container.append(coverage);
    const comparison = renderComparison(response);
    if (comparison) container.append(comparison);
  }
  if (request) container.append(rawPanel(`Request JSON${url ? ` (POST ${url})` : ""}`, request));
  if (response !== undefined) container.append(rawPanel(`Response JSON (HTTP ${status})`, response));
}
