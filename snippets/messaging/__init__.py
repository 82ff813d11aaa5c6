"""Chapter 3, Messaging Systems: brokers, queues, persistence and routing, in memory and on real engines."""
