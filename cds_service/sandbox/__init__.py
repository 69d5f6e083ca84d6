"""The browser sandbox: a page that fires scenario patients at this service like an EHR and
renders the answer, plus a card preview for any pasted CDS Hooks response (`/sandbox`)."""

from cds_service.sandbox.router import SandboxFhir, mount_sandbox

__all__ = ["SandboxFhir", "mount_sandbox"]
