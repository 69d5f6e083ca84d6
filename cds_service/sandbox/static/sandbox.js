// The sandbox page: pick a scenario patient and fire it at the service as an EHR would, or
// paste a CDS Hooks response and preview its cards. Requests are built by /sandbox/api/request
// and then POSTed by this page to /cds-services/{id} unchanged.

import { el, renderExchange, statusOf } from "./render.js";
import { renderWorksheet } from "./worksheet.js";

const $ = (id) => document.getElementById(id);
let catalogue = null;
// This tab's sandbox session: the worksheets it stores are read back only by it (another user of
// the same server, or the README's curl loop, never sees them).
const SESSION = sessionStorage.getItem("sandbox-session") ?? crypto.randomUUID();
sessionStorage.setItem("sandbox-session", SESSION);

async function fetchJson(url, options) {
  const response = await fetch(url, options);
  let body;
  try {
    body = await response.json();
  } catch {
    body = { issue: [{ diagnostics: `the response of ${url} is not JSON` }] };
  }
  return { status: response.status, body };
}

const post = (url, data) =>
  fetchJson(url, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(data) });

function option(value, label, disabled = false) {
  const node = el("option", null, label);
  node.value = value;
  node.disabled = disabled;
  return node;
}

function policyName(id) {
  return catalogue.policies.find((p) => p.id === id)?.payer ?? id;
}

function showScenario() {
  const scenario = catalogue.scenarios.find((s) => s.id === $("scenario").value);
  $("scenario-description").textContent = scenario.description;
  const fixturePayer = scenario.payer === null ? "no Coverage" : scenario.payer === "unrecognised" ? "an unrecognised payer" : policyName(scenario.payer);
  $("payer").options[0].textContent = `From the fixture's Coverage (${fixturePayer})`;
  const table = $("expected");
  table.replaceChildren();
  const head = el("tr");
  head.append(el("th", null, "Expected"), ...scenario.services.map((s) => el("th", null, s)));
  table.append(head);
  for (const policy of catalogue.policies) {
    const row = el("tr");
    row.append(el("td", null, policy.payer));
    for (const service of scenario.services) {
      const determination = scenario.expected[service]?.[policy.id] ?? "";
      row.append(el("td", `determination-${determination}`, determination));
    }
    table.append(row);
  }
}

async function loadCatalogue() {
  const { status, body } = await fetchJson("/sandbox/api/scenarios");
  if (status !== 200) throw new Error(`GET /sandbox/api/scenarios: HTTP ${status}`);
  catalogue = body;
  $("scenario").replaceChildren(...catalogue.scenarios.map((s) => option(s.id, `${s.id} — ${s.title}`)));
  $("payer").replaceChildren(
    option("fixture", "From the fixture's Coverage"),
    ...catalogue.policies.map((p) => option(p.id, `${p.payer} (${p.id})`)),
    option("none", "None: compare all five policies"),
  );
  $("prefetch").replaceChildren(
    ...catalogue.prefetchModes.map((m) => option(m.id, m.available ? m.label : `${m.label} (unavailable: ${m.reason})`, !m.available)),
  );
  showScenario();
}

async function fire(event) {
  event.preventDefault();
  const result = $("fire-result");
  result.setAttribute("aria-busy", "true");
  closeWorksheet(); // the previous answer's worksheet must not stay open (or be submitted)
  const spec = {
    scenario: $("scenario").value,
    services: $("services").value,
    hook: $("hook").value,
    payer: $("payer").value,
    prefetch: $("prefetch").value,
    session: SESSION,
  };
  try {
    const built = await post("/sandbox/api/request", spec);
    if (built.status !== 200) {
      renderExchange(result, { status: built.status, response: built.body });
    } else {
      const { service, request } = built.body;
      const answer = await post(service, request);
      renderExchange(result, { status: answer.status, response: answer.body, request, url: service });
      if (answer.status === 200) {
        offerWorksheets(result, answer.body, spec, request);
        offerApp(result, answer.body, request);
      }
    }
  } catch (error) {
    result.replaceChildren(el("div", "error", `Could not reach the service: ${error.message}`));
  }
  result.dataset.fired = spec.scenario;
  result.removeAttribute("aria-busy");
}

// --- the SMART app (issue 21): the card's `smart` link, launched as the EHR would ---------------
function offerApp(result, response, request) {
  const nodes = result.querySelectorAll(".cds-card");
  (response.cards ?? []).forEach((card, index) => {
    const link = (card.links ?? []).find((l) => l.type === "smart");
    if (!link || !nodes[index]) return;
    const button = el("button", "launch-app", link.label);
    button.type = "button";
    button.addEventListener("click", async () => {
      const orders = (request.context.draftOrders?.entry ?? []).map((e) => `ServiceRequest/${e.resource.id}`);
      const launched = await post("/sandbox/api/launch", {
        launchUrl: link.url, patient: request.context.patientId, orders, session: SESSION,
      });
      if (launched.status !== 200) {
        button.replaceWith(el("div", "error", `Could not launch the app (HTTP ${launched.status})`));
        return;
      }
      window.open(launched.body.url, "_blank");
    });
    nodes[index].querySelector('.card-links [data-smart="true"]')?.replaceWith(button);
  });
}

// --- the worksheet loop (issue 13) ------------------------------------------------------------
function closeWorksheet() {
  const box = $("worksheet");
  box.hidden = true;
  box.replaceChildren();
}

/** The worksheet canonical a card's "Request form completion" suggestion asks for, if any. */
function worksheetCanonical(card) {
  for (const suggestion of card.suggestions ?? []) {
    for (const action of suggestion.actions ?? []) {
      const input = action.resource?.resourceType === "Task" ? action.resource.input ?? [] : [];
      const canonical = input.find((i) => i.type?.text === "questionnaire")?.valueCanonical;
      if (canonical) return canonical;
    }
  }
  return null;
}

function offerWorksheets(result, response, spec, request) {
  const nodes = result.querySelectorAll(".cds-card");
  (response.cards ?? []).forEach((card, index) => {
    const canonical = worksheetCanonical(card);
    if (!canonical || !nodes[index]) return;
    const button = el("button", "open-worksheet", "Open the worksheet");
    button.type = "button";
    button.dataset.canonical = canonical;
    const statuses = new Map((card.extension?.["dli-hpc-cds.evaluations"] ?? [])
      .flatMap((e) => (e.criteria ?? []).map((c) => [c.id, statusOf(c)])));
    button.addEventListener("click", () => openWorksheet(canonical, spec, request.context.userId, statuses));
    nodes[index].append(button);
  });
}

async function openWorksheet(canonical, spec, author, statuses) {
  const box = $("worksheet");
  box.hidden = false;
  box.replaceChildren(el("p", "hint", "Loading the pre-filled worksheet…"));
  const built = await post("/sandbox/api/package", { scenario: spec.scenario, services: spec.services, payer: spec.payer });
  // DTR `questionnaire`: exactly this worksheet, whichever payer's (the all-payer comparison has none)
  const asked = built.status === 200 ? { ...built.body.parameters, parameter: [...built.body.parameters.parameter, { name: "questionnaire", valueCanonical: canonical }] } : null;
  const packaged = asked ? await post(built.body.url, asked) : built;
  const bundles = (packaged.body.parameter ?? []).filter((p) => p.name === "PackageBundle").map((p) => p.resource.entry);
  const found = bundles.find(([q]) => `${q.resource.url}|${q.resource.version}` === canonical);
  if (packaged.status !== 200 || !found) {
    box.replaceChildren(el("div", "error", `No worksheet ${canonical} (HTTP ${packaged.status})`));
    return;
  }
  const [questionnaire, prefilled] = found.map((e) => e.resource);
  const response = { ...prefilled, author: { reference: author } };
  renderWorksheet(box, questionnaire, response, async (qr) => {
    const stored = await post(`/sandbox/api/worksheet?session=${encodeURIComponent(SESSION)}`, qr);
    if (stored.status !== 201) return `Not stored (HTTP ${stored.status}): ${stored.body.issue?.[0]?.diagnostics ?? ""}`;
    return `Stored as QuestionnaireResponse/${stored.body.id}. Fire again to see the new determination.`;
  }, statuses);
  box.scrollIntoView({ block: "start" });
}

function preview() {
  const result = $("preview-result");
  let response;
  try {
    response = JSON.parse($("preview-input").value);
  } catch (error) {
    result.replaceChildren(el("div", "error", `Not valid JSON: ${error.message}`));
    return;
  }
  renderExchange(result, { status: 200, response });
}

function showTab() {
  const previewing = location.hash === "#preview";
  $("fire-tab").hidden = previewing;
  $("preview-tab").hidden = !previewing;
  $("tab-fire").classList.toggle("active", !previewing);
  $("tab-preview").classList.toggle("active", previewing);
}

window.addEventListener("hashchange", showTab);
$("scenario").addEventListener("change", showScenario);
$("fire-form").addEventListener("submit", fire);
$("preview-render").addEventListener("click", preview);
showTab();
loadCatalogue().then(
  () => document.body.classList.add("ready"),
  (error) => $("fire-result").replaceChildren(el("div", "error", `Could not load the scenarios: ${error.message}`)),
);
