"""Small helpers every stage shares: redaction of secrets, atomic and checked file writes, the OpenAI-compatible
chat client. Each has one job and no dependency on the rest of visionr1."""
