"""Transport per participant: SAGA_TRANSPORT_ORDER|USER|PAYMENT|TIMER, as settings and as wiring."""

from __future__ import annotations

import pytest

from saga.adapters.http_publisher import HttpCommandPublisher
from saga.adapters.kafka_publisher import KafkaCommandPublisher
from saga.adapters.routing_publisher import RoutingPublisher
from saga.adapters.timer_api_publisher import TimerApiPublisher
from saga.domain.messages import Participant
from saga.entrypoints.config import ConfigError, Settings
from saga.entrypoints.container import build_container, consumer_kind

PLATFORM = {
    "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9",
    "SAGA_TRANSPORT_TIMER": "timer-api",
    "SCHEDULER_SERVICE_URL": "http://timer.example:8080/",
}


def test_every_participant_takes_saga_transport_by_default() -> None:
    settings = Settings.from_env({"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9"})
    assert [settings.route(p) for p in Participant] == ["kafka"] * 4 and not settings.routed
    assert len(settings.kafka.event_topics()) == 4
    assert isinstance(build_container(settings).publisher(), KafkaCommandPublisher)


def test_the_platforms_mix_routes_the_timer_to_its_api_and_consumes_only_kafka_events() -> None:
    settings = Settings.from_env(PLATFORM)
    assert {p: settings.route(p) for p in Participant} == {
        Participant.ORDER: "kafka",
        Participant.USER: "kafka",
        Participant.PAYMENT: "kafka",
        Participant.TIMER: "timer-api",
    }
    assert settings.routed and consumer_kind(settings) == "kafka"
    assert settings.kafka.event_topics() == ["order_events", "user_events", "payment_events"]
    publisher = build_container(settings).publisher()
    assert isinstance(publisher, RoutingPublisher)
    kafka = publisher.route(Participant.ORDER)
    assert isinstance(kafka, KafkaCommandPublisher)
    assert publisher.route(Participant.USER) is kafka and publisher.route(Participant.PAYMENT) is kafka
    assert isinstance(publisher.route(Participant.TIMER), TimerApiPublisher)
    publisher.close()


def test_one_participant_over_http_beside_kafka_needs_only_its_own_url() -> None:
    settings = Settings.from_env(
        {"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9", "SAGA_TRANSPORT_USER": "http", "USER_SERVICE_URL": "http://u"}
    )
    publisher = build_container(settings).publisher()
    assert isinstance(publisher, RoutingPublisher)
    assert isinstance(publisher.route(Participant.USER), HttpCommandPublisher)
    assert settings.kafka.event_topics() == ["order_events", "payment_events", "timer_events"]
    publisher.close()


def test_http_with_one_participant_on_kafka_consumes_kafka_events() -> None:
    urls = {name: "http://p" for name in ("ORDER_SERVICE_URL", "USER_SERVICE_URL", "PAYMENT_SERVICE_URL")}
    settings = Settings.from_env(
        {
            **urls,
            "SAGA_TRANSPORT": "http",
            "SAGA_TRANSPORT_TIMER": "kafka",
            "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9",
        }
    )
    assert consumer_kind(settings) == "kafka" and settings.kafka.event_topics() == ["timer_events"]


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({**PLATFORM, "SCHEDULER_SERVICE_URL": ""}, "needs SCHEDULER_SERVICE_URL"),
        ({"SAGA_TRANSPORT_ORDER": "kafka"}, "SAGA_TRANSPORT_ORDER cannot be mixed with the in-memory transport"),
        ({**PLATFORM, "SAGA_TRANSPORT_ORDER": "timer-api"}, "SAGA_TRANSPORT_ORDER"),
        (
            {
                "SAGA_TRANSPORT": "http",
                **{
                    k: "http://p"
                    for k in ("ORDER_SERVICE_URL", "USER_SERVICE_URL", "PAYMENT_SERVICE_URL", "SCHEDULER_SERVICE_URL")
                },
                "SAGA_TRANSPORT_PAYMENT": "kafka",
            },
            "needs KAFKA_BOOTSTRAP_SERVERS",
        ),
    ],
)
def test_a_route_without_its_address_is_refused_naming_the_variable(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Settings.from_env(environ)


def test_the_payment_return_url_reaches_authorize_payment() -> None:
    from saga.testing import SagaHarness

    settings = Settings.from_env({"SAGA_PAYMENT_RETURN_URL": "https://shop.example/paid?x=1"})
    assert settings.policy.payment_return_url == "https://shop.example/paid?x=1"
    harness = SagaHarness(profile="platform", policy=settings.policy)
    harness.start_order("cust_1", {"foodItems": [{"name": "B", "price": 5, "quantity": 1}], "deliveryLocation": "N"})
    authorize = next(command for command in harness.sent if command["type"] == "authorize_payment")
    assert authorize["payload"]["return_url"] == "https://shop.example/paid?x=1"
    with pytest.raises(ConfigError, match="SAGA_PAYMENT_RETURN_URL"):
        Settings.from_env({"SAGA_PAYMENT_RETURN_URL": "shop.example/paid"})
