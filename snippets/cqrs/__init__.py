"""Chapter 6, CQRS: command side, query side, synchronization, performance."""
