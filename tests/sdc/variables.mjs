// Evaluates a Questionnaire's root FHIRPath variables in order with fhirpath.js (HL7 FHIRPath,
// LHNCBC; R4 model), as an SDC engine does after its x-fhir-query reads.
// stdin: [{"context": {name: resource}, "variables": [{"name", "expression"}]}]
// stdout: per case, {name: result collection} (or {"error": message} for a variable that fails).
import fhirpath from "fhirpath";
import r4 from "fhirpath/fhir-context/r4/index.js";

const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const cases = JSON.parse(Buffer.concat(chunks).toString("utf8"));
const results = cases.map(({ context, variables }) => {
  const env = { ...context };
  const found = {};
  for (const { name, expression } of variables) {
    try {
      env[name] = found[name] = fhirpath.evaluate({}, expression, env, r4);
    } catch (error) {
      return { error: `${name}: ${String(error?.message ?? error)}` };
    }
  }
  return found;
});
process.stdout.write(JSON.stringify(results));
