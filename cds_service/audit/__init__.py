"""Decision audit log and CDS Hooks feedback (CRD found-37): a PHI-minimised record of every
answered hook call, written off the request path, on SQLite by default or PostgreSQL."""
