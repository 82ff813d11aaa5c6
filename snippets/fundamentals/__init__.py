"""Chapter 1, Event-Driven Fundamentals: the event bus, message kinds, trade-offs, the decision guide."""
