// Evaluates FHIRPath invariants with fhirpath.js (the R4 model, so `value` resolves to
// valueCode etc.). stdin: {"invariants": {key: expression}, "base": "Extension",
// "items": [element, ...]}; stdout: one {key: result} object per item, results as the engine
// returns them ([true], [false], [] or {"error": message}).
import fhirpath from "fhirpath";
import r4 from "fhirpath/fhir-context/r4/index.js";

const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const given = JSON.parse(Buffer.concat(chunks).toString("utf8"));
const results = given.items.map((item) => {
  const out = {};
  for (const [key, expression] of Object.entries(given.invariants)) {
    try {
      out[key] = fhirpath.evaluate(item, { base: given.base, expression }, null, r4);
    } catch (error) {
      out[key] = { error: error.message };
    }
  }
  return out;
});
process.stdout.write(JSON.stringify(results));
