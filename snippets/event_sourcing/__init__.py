"""Chapter 5, Event Sourcing: an event store on SQLite and PostgreSQL, snapshots, projections."""
