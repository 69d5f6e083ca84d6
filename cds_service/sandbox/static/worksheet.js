// A small Questionnaire renderer for the worksheets this service generates (group, choice,
// boolean, decimal, integer, string, attachment, the display item that holds a policy citation;
// enableWhen "=" on a coding).
// It builds DOM nodes with textContent only, never HTML. Pre-filled answers (from the record,
// DTR information-origin) are shown read-only: the record wins over a worksheet answer anyway.

import { el, STATUS } from "./render.js";

const flatten = (items) => (items ?? []).flatMap((i) => [i, ...flatten(i.item), ...(i.answer ?? []).flatMap((a) => flatten(a.item))]);

function answerText(answer) {
  if ("valueCoding" in answer) return answer.valueCoding.code;
  if ("valueBoolean" in answer) return answer.valueBoolean ? "true" : "false";
  for (const key of ["valueDecimal", "valueInteger", "valueString"]) if (key in answer) return String(answer[key]);
  return "";
}

function control(item) {
  if (item.type === "choice" || item.type === "boolean") {
    const select = el("select");
    const choices = item.type === "boolean"
      ? [["true", "Yes"], ["false", "No"]]
      : item.answerOption.map((o) => [o.valueCoding.code, o.valueCoding.display ?? o.valueCoding.code]);
    select.append(el("option", null, "—"));
    select.options[0].value = "";
    for (const [value, label] of choices) {
      const option = el("option", null, label);
      option.value = value;
      select.append(option);
    }
    return select;
  }
  const input = el("input");
  input.type = item.type === "decimal" || item.type === "integer" ? "number" : "text";
  if (item.type === "decimal") input.step = "any";
  if (item.type === "string") input.placeholder = "e.g. C92.02 (comma-separated)";
  return input;
}

/** "Met: " etc. before a question: the criterion's status now, in the card's words. */
function statusWord(status) {
  const word = el("strong", `ws-status-word status-${status}`, `${STATUS[status]?.[1] ?? status}: `);
  word.dataset.status = status;
  return word;
}

function question(item, prefilled, statuses) {
  const box = el("div", "ws-item");
  box.dataset.linkId = item.linkId;
  const id = `ws-${item.linkId}`;
  const label = el("label", null);
  if (statuses.has(item.linkId)) label.append(statusWord(statuses.get(item.linkId)));
  label.append(item.text);
  label.htmlFor = id;
  box.append(label);
  if (item.type === "attachment") {
    box.classList.add("ws-attachment");
    box.append(el("p", "hint", "Attach the report in the EHR; the worksheet records the answers."));
    return box;
  }
  const input = control(item);
  input.id = id;
  input.dataset.type = item.type;
  const answers = prefilled.get(item.linkId);
  if (answers) {
    input.value = item.type === "string" ? answers.map(answerText).join(", ") : answerText(answers[0]);
    input.disabled = true;
    box.classList.add("ws-prefilled");
  }
  box.append(input);
  const help = (item.item ?? []).find((i) => i.type === "display");
  if (help) box.append(el("p", "hint ws-citation", help.text));
  if (answers) box.append(el("p", "hint ws-origin", "From the record"));
  return box;
}

function build(items, prefilled, statuses) {
  const nodes = [];
  for (const item of items ?? []) {
    if (item.type === "display") continue;
    if (item.type === "group") {
      const set = el("fieldset", "ws-group");
      set.dataset.linkId = item.linkId;
      set.append(el("legend", null, item.text), ...build(item.item, prefilled, statuses));
      nodes.push(set);
    } else {
      nodes.push(question(item, prefilled, statuses));
    }
  }
  return nodes;
}

function value(input) {
  const raw = input.value.trim();
  if (!raw) return null;
  switch (input.dataset.type) {
    case "boolean": return [{ valueBoolean: raw === "true" }];
    case "decimal": return [{ valueDecimal: Number(raw) }];
    case "integer": return [{ valueInteger: Math.round(Number(raw)) }];
    case "string": return raw.split(",").map((s) => s.trim()).filter(Boolean).map((s) => ({ valueString: s }));
    default: return null; // choice: needs the option's system, see answers()
  }
}

/** Render `questionnaire` into `container`, pre-filled from `response`; `submit(qr)` on send.
 * `statuses`: criterion id (= item linkId) -> status ("met", "not-needed", ...), shown in words. */
export function renderWorksheet(container, questionnaire, response, submit, statuses = new Map()) {
  const prefilled = new Map(flatten(response.item).filter((i) => i.answer).map((i) => [i.linkId, i.answer]));
  const byLink = new Map(flatten(questionnaire.item).map((i) => [i.linkId, i]));
  const form = el("form", "worksheet");
  form.dataset.questionnaire = questionnaire.id;
  form.append(el("h3", null, questionnaire.title), el("p", "hint", questionnaire.description));
  form.append(...build(questionnaire.item, prefilled, statuses));
  const send = el("button", null, "Submit worksheet");
  send.type = "submit";
  const status = el("p", "ws-status");
  form.append(send, status);

  const current = (linkId) => form.querySelector(`[data-link-id="${CSS.escape(linkId)}"] :is(select, input)`)?.value ?? "";
  const refresh = () => {
    for (const box of form.querySelectorAll(".ws-item")) {
      const item = byLink.get(box.dataset.linkId);
      box.hidden = !(item.enableWhen ?? []).every((w) => current(w.question) === w.answerCoding?.code);
    }
  };
  const answers = (item) => {
    const box = form.querySelector(`[data-link-id="${CSS.escape(item.linkId)}"]`);
    const input = box?.querySelector("select, input");
    if (!input || box.hidden) return null;
    if (item.type !== "choice") return value(input);
    const option = item.answerOption.find((o) => o.valueCoding.code === input.value);
    return option ? [{ valueCoding: option.valueCoding }] : null;
  };
  const collect = (items) => {
    const out = [];
    for (const item of items ?? []) {
      if (item.type === "group") {
        const inner = collect(item.item);
        if (inner.length) out.push({ linkId: item.linkId, text: item.text, item: inner });
      } else if (item.type !== "display" && item.type !== "attachment") {
        const given = prefilled.get(item.linkId) ?? answers(item);
        if (given) out.push({ linkId: item.linkId, text: item.text, answer: given });
      }
    }
    return out;
  };
  form.addEventListener("change", refresh);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const qr = { ...response, status: "completed", authored: new Date().toISOString(), item: collect(questionnaire.item) };
    status.textContent = "Sending…";
    status.textContent = await submit(qr);
    form.dataset.submitted = "true";
  });
  refresh();
  container.replaceChildren(form);
}
