"""What participant teams import to run sagas in their own tests."""

from saga.adapters.clock import ManualClock
from saga.adapters.platform_participants import Knob, Knobs
from saga.domain.messages import Participant
from saga.domain.policy import SagaPolicy
from saga.domain.saga import SagaStatus
from saga.entrypoints.harness import SagaHarness

__all__ = ["Knob", "Knobs", "ManualClock", "Participant", "SagaHarness", "SagaPolicy", "SagaStatus"]
