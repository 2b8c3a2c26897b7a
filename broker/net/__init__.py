"""HTTP plumbing: one total deadline per exchange, and a minimal client for the local token API."""
