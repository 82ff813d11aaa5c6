"""Chapter 2, Event Design: envelopes, versions, names, payloads, a registry, a catalogue."""
