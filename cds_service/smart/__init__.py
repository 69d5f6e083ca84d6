"""The SMART on FHIR app the cards link to: the whole case (timeline, criteria, payer comparison,
worksheet), launched from the EHR, reading the record with its own SMART token."""
