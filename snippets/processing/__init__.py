"""Chapter 4, Event Processing: resilient handlers, sagas, aggregators, filters and translators."""
