// Renders worksheets with CSIRO Smart Forms (@aehrc/smart-forms-renderer) as its documentation
// shows: buildForm(questionnaire, response), then <BaseRenderer/> inside its theme and query
// providers. window.renderWorksheets(jobs) renders each {questionnaire, response} in turn and
// reports what the renderer holds (getResponse) and what it shows (the DOM), for the Python
// test to compare with what the service pre-filled.
import React from "react";
import { createRoot } from "react-dom/client";
import { flushSync } from "react-dom";
import { QueryClientProvider } from "@tanstack/react-query";
import {
  BaseRenderer,
  RendererThemeProvider,
  buildForm,
  destroyForm,
  getResponse,
  removeEmptyAnswersFromResponse,
  useRendererQueryClient,
} from "@aehrc/smart-forms-renderer";

// useRendererQueryClient only constructs a QueryClient (no hook inside): one serves every form
const queryClient = useRendererQueryClient();

function Worksheet() {
  return (
    <RendererThemeProvider>
      <QueryClientProvider client={queryClient}>
        <BaseRenderer />
      </QueryClientProvider>
    </RendererThemeProvider>
  );
}

// A macrotask turn: React runs passive effects and the renderer's update queue in these.
const turn = () => new Promise((resolve) => setTimeout(resolve, 0));

// React commits effects (enableWhen, the update queue) over a few turns: wait until the form's
// markup has stayed the same for three turns, for at most two seconds.
async function settle(host) {
  const deadline = performance.now() + 2000;
  let last = "";
  let same = 0;
  while (same < 3 && performance.now() < deadline) {
    await turn();
    const now = host.innerHTML;
    same = now === last && host.querySelector("[data-linkid]") ? same + 1 : 0;
    last = now;
  }
}

function visible(element) {
  return !!element && element.getClientRects().length > 0;
}

// What the page shows for one item: whether it is on screen, and its controls' state.
function shown(host, linkId) {
  const box = host.querySelector(`[data-linkid="${CSS.escape(linkId)}"]`);
  if (!visible(box)) return { visible: false };
  const controls = [...box.querySelectorAll("input, textarea")].map((c) => ({
    type: c.type,
    value: c.value,
    checked: c.checked,
  }));
  return { visible: true, text: box.innerText, controls };
}

function linkIds(items) {
  return (items ?? []).flatMap((item) => [item.linkId, ...linkIds(item.item)]);
}

async function renderOne(host, job, keep) {
  await buildForm({ questionnaire: job.questionnaire, questionnaireResponse: job.response });
  const root = createRoot(host);
  flushSync(() => root.render(<Worksheet />));
  await settle(host);
  const held = getResponse();
  // what Smart Forms keeps when it saves: no empty answers and none to a disabled item
  const saved = removeEmptyAnswersFromResponse(job.questionnaire, held);
  const items = Object.fromEntries(
    linkIds(job.questionnaire.item).map((id) => [id, shown(host, id)]),
  );
  const result = { response: held, saved, items, text: host.innerText };
  if (!keep) {
    root.unmount();
    destroyForm();
  }
  return result;
}

window.renderWorksheets = async (jobs, keepLast = false) => {
  const host = document.getElementById("form");
  const results = [];
  for (const [index, job] of jobs.entries()) {
    try {
      results.push(await renderOne(host, job, keepLast && index === jobs.length - 1));
    } catch (error) {
      results.push({ error: String(error?.stack ?? error) });
    }
  }
  return results;
};
document.body.classList.add("ready");
