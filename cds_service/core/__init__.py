"""The pure core: FHIR in, facts out; facts + policy in, determination out. No I/O here."""
