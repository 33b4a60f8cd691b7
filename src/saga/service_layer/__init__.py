"""Use cases that run the saga against the ports: start, apply events, sweep deadlines, relay the outbox."""
