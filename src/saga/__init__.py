"""The create-order saga orchestrator."""
