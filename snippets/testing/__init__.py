"""Chapter 7, Testing Event-Driven Systems: each technique as a runnable test module with a broken system it catches."""
