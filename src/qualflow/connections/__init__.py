"""Named Qualtrics connections: credentials, validation, service users, shared clients."""
