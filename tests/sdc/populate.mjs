// Populates Questionnaires with @aehrc/sdc-populate (CSIRO Smart Forms' SDC $populate engine)
// from a FHIR server, as a standard SDC / DTR client would with its own token.
// stdin: {"server": url, "token": bearer, "jobs": [{"questionnaire": Q, "patient": Patient}]}
// stdout: one QuestionnaireResponse (or {"error": message}) per job, in order.
import { populateQuestionnaire } from "@aehrc/sdc-populate";

const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const given = JSON.parse(Buffer.concat(chunks).toString("utf8"));
const config = { sourceServerUrl: given.server, authToken: given.token };

async function fetchResource(query, requestConfig) {
  const base = requestConfig.sourceServerUrl.replace(/\/$/, "");
  const url = /^https?:\/\//.test(query) ? query : `${base}/${query}`;
  const response = await fetch(url, {
    headers: { Accept: "application/fhir+json", Authorization: `Bearer ${requestConfig.authToken}` },
  });
  if (!response.ok) throw new Error(`HTTP ${response.status} for ${url}`);
  return response.json();
}

const results = [];
for (const job of given.jobs) {
  try {
    const { populateSuccess, populateResult } = await populateQuestionnaire({
      questionnaire: job.questionnaire,
      fetchResourceCallback: fetchResource,
      fetchResourceRequestConfig: config,
      patient: job.patient,
    });
    results.push(populateSuccess && populateResult ? populateResult.populatedResponse : { error: "not populated" });
  } catch (error) {
    results.push({ error: String(error?.message ?? error) });
  }
}
process.stdout.write(JSON.stringify(results));
