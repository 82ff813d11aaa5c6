"""Chapter 8, Monitoring and Observability: correlation ids, dead letters, metrics, traces and debugging."""
