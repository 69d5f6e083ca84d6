// The SMART launch URL (/smart/launch): EHR launch (?iss=&launch=) or standalone (?iss=).
// fhirclient does the whole OAuth 2.0 + PKCE flow: discovery, authorize, then index.html.
import FHIR from "fhirclient";

FHIR.oauth2.authorize({
  clientId: "dli-hpc-cds-app",
  scope: "launch/patient openid fhirUser patient/*.read patient/QuestionnaireResponse.write",
  redirectUri: "index.html",
  pkceMode: "required",
});
