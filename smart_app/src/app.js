// The SMART app (/smart/index.html, the redirect URI): reads the patient's record from the EHR
// with its own SMART token, asks the service for the whole case (POST /smart/api/case: nothing
// is stored there), and shows the timeline, the criteria per policy, the payer comparison and
// the worksheet. A completed worksheet is written back to the EHR as a QuestionnaireResponse,
// so the next hook call reads it.
import FHIR from "fhirclient";
import { el, STATUS } from "../../cds_service/sandbox/static/render.js";
import { renderWorksheet } from "../../cds_service/sandbox/static/worksheet.js";
import { drawTimeline } from "./timeline.js";

// What the hooks' prefetch would hold; a type the EHR does not serve is left out.
const RECORD_QUERIES = [
  "Condition", "Procedure", "Observation", "Coverage?_include=Coverage:payor",
  "MedicationAdministration", "MedicationRequest", "QuestionnaireResponse",
];
const $ = (id) => document.getElementById(id);

async function search(client, query, patient) {
  const joiner = query.includes("?") ? "&" : "?";
  try {
    return await client.request(`${query}${joiner}patient=${encodeURIComponent(patient)}`, { pageLimit: 0, flat: true });
  } catch (error) {
    if (error.status === 404) return []; // not served by this EHR
    throw error;
  }
}

/** The orders the launch is about (SMART fhirContext), else the patient's draft DLI / HPC orders. */
async function readOrders(client, patient) {
  const context = client.state.tokenResponse?.fhirContext ?? [];
  const refs = context.map((c) => c.reference).filter((r) => r?.startsWith("ServiceRequest/"));
  if (refs.length) return Promise.all(refs.map((r) => client.request(r)));
  const drafts = await client.request(`ServiceRequest?patient=${encodeURIComponent(patient)}&status=draft`, { pageLimit: 0, flat: true });
  return drafts;
}

async function readCase(client) {
  const patient = client.patient.id;
  const [orders, ...found] = await Promise.all([readOrders(client, patient), ...RECORD_QUERIES.map((q) => search(client, q, patient))]);
  const seen = new Set();
  const entry = found.flat().filter((r) => {
    const key = `${r.resourceType}/${r.id}`;
    return seen.has(key) ? false : seen.add(key);
  }).map((resource) => ({ resource }));
  const response = await fetch("/smart/api/case", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ orders, record: { resourceType: "Bundle", type: "collection", entry } }),
  });
  const body = await response.json();
  if (!response.ok) throw new Error(body.issue?.[0]?.diagnostics ?? `HTTP ${response.status}`);
  return { patient, body };
}

// --- the criteria, per policy --------------------------------------------------------------------
function criterionItem(criterion) {
  const [, word] = STATUS[criterion.status] ?? ["", criterion.statusWord];
  const item = el("li", `criterion status-${criterion.status}`);
  item.dataset.status = criterion.status;
  item.dataset.criterion = criterion.id;
  item.style.marginLeft = `${(criterion.depth - 1) * 1.1}rem`;
  const head = el("div", "criterion-head");
  head.append(el("strong", "status-word", `${word}: `), criterion.text);
  item.append(head);
  for (const line of criterion.evidence) item.append(el("div", "evidence", line));
  if (criterion.note) item.append(el("div", "evidence", criterion.note));
  if (criterion.conflict) item.append(el("div", "conflict", criterion.conflict));
  if (criterion.toSettle && criterion.status === "unknown") item.append(el("div", "to-settle", `To settle: ${criterion.toSettle}`));
  if (criterion.reading && criterion.status !== "not-needed") item.append(el("div", "reading", `How the policy is read: ${criterion.reading}`));
  item.append(el("div", "citation", criterion.citation));
  return item;
}

function policySection(evaluation) {
  const box = el("section", "policy");
  box.dataset.policy = evaluation.policyId;
  box.dataset.determination = evaluation.determination;
  box.append(el("h3", `determination-${evaluation.determination}`,
    `${evaluation.payer} ${evaluation.policy.number}: ${evaluation.serviceLabel} ${evaluation.determinationWords}`));
  box.append(el("p", "next-step", evaluation.nextStep.replace(/\*\*/g, "").replace(/\\(.)/g, "$1")));
  const list = el("ul", "criteria");
  for (const criterion of evaluation.criteria) list.append(criterionItem(criterion));
  box.append(list);
  for (const advisory of evaluation.advisories) box.append(el("p", "hint", `Note: ${advisory}`));
  const integrator = el("details", "integrator");
  integrator.append(el("summary", null, "For integrators: resource ids and coding"));
  for (const c of evaluation.criteria) {
    const parts = [...c.integrator.evidence, c.integrator.coding].filter(Boolean);
    if (parts.length) integrator.append(el("div", "hint", `${c.id}: ${parts.join("; ")}`));
  }
  box.append(integrator);
  return box;
}

function comparisonTable(evaluations) {
  const table = el("table", "comparison");
  const head = el("tr");
  head.append(el("th", null, "Order"));
  const services = [...new Set(evaluations.map((e) => e.serviceLabel))];
  const payers = [...new Set(evaluations.map((e) => e.policyId))];
  for (const id of payers) {
    const first = evaluations.find((e) => e.policyId === id);
    head.append(el("th", null, `${first.payer} ${first.policy.number}`));
  }
  table.append(head);
  for (const service of services) {
    const row = el("tr");
    row.append(el("th", null, service));
    for (const id of payers) {
      const e = evaluations.find((x) => x.policyId === id && x.serviceLabel === service);
      const cell = el("td", e ? `determination-${e.determination}` : null, e ? e.determinationWords : "");
      if (e) cell.dataset.policy = id;
      row.append(cell);
    }
    table.append(row);
  }
  return table;
}

// --- the worksheet, written back to the EHR ---------------------------------------------------
function offerWorksheet(client, body, onSaved) {
  const box = $("worksheet");
  box.replaceChildren();
  const open = body.ownPayer.find((e) => e.worksheet);
  if (!open) {
    box.append(el("p", "hint", "No worksheet to complete: nothing is left open for the patient's payer."));
    return;
  }
  const found = body.worksheets.find((w) => `${w.questionnaire.url}|${w.questionnaire.version}` === open.worksheet);
  if (!found) return;
  const author = client.user?.fhirUser ?? client.state.tokenResponse?.fhirUser;
  const response = { ...found.response, ...(author ? { author: { reference: author } } : {}) };
  renderWorksheet(box, found.questionnaire, response, async (qr) => {
    const { id, ...unsaved } = qr; // the EHR assigns the id
    const saved = await client.create(unsaved);
    onSaved();
    return `Saved to the EHR as QuestionnaireResponse/${saved.id}. The next order-sign reads it.`;
  }, new Map(open.criteria.map((c) => [c.id, c.status])));
}

function render(client, { patient, body }) {
  $("patient").textContent = `Patient ${patient}`;
  drawTimeline($("timeline"), body.timeline);
  const own = $("own-payer");
  own.replaceChildren();
  if (body.ownPayer.length) for (const e of body.ownPayer) own.append(policySection(e));
  else own.append(el("p", "hint", "The patient's payer has no policy here: see the payer comparison."));
  $("comparison").replaceChildren(comparisonTable(body.comparison));
  const all = $("all-policies");
  all.replaceChildren(...body.comparison.map(policySection));
  offerWorksheet(client, body, () => $("recheck").hidden = false);
  document.body.dataset.loaded = String(Number(document.body.dataset.loaded ?? 0) + 1);
}

async function load(client) {
  $("status").textContent = "Reading the record…";
  try {
    render(client, await readCase(client));
    $("status").textContent = "";
  } catch (error) {
    $("status").replaceChildren(el("div", "error", `Could not read the case: ${error.message}`));
  }
}

FHIR.oauth2.ready().then(
  (client) => {
    $("recheck").addEventListener("click", () => { $("recheck").hidden = true; load(client); });
    load(client);
  },
  (error) => $("status").replaceChildren(el("div", "error", `Not launched: ${error.message}. Open the app from a card.`)),
);
