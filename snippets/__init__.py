"""Event-Driven Design: every example module of the site, one sub-package per chapter."""
