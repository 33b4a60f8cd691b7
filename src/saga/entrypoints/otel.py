"""OpenTelemetry for `saga serve` and `saga worker`, configured by the standard OTEL_* variables.

Tracing is on when the `saga[otel]` extra is installed and OTEL_TRACES_EXPORTER, or an
OTLP endpoint (OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_EXPORTER_OTLP_TRACES_ENDPOINT), is set;
OTEL_SDK_DISABLED=true turns it off. OTEL_TRACES_EXPORTER is `otlp` (OTLP over HTTP,
the default), `console` or `none`. The SDK reads the rest itself: OTEL_SERVICE_NAME and
OTEL_RESOURCE_ATTRIBUTES, OTEL_TRACES_SAMPLER, OTEL_BSP_*, OTEL_EXPORTER_OTLP_HEADERS, ...
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping

log = logging.getLogger(__name__)

ENDPOINT_VARIABLES = ("OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")


def configure_tracing(environ: Mapping[str, str] | None = None) -> bool:
    """Installs the global tracer provider from the OTEL_* variables; returns whether tracing is on."""
    env = os.environ if environ is None else environ
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true" or not any(env.get(v) for v in ENDPOINT_VARIABLES):
        return False
    exporter_name = env.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower()
    if exporter_name == "none":
        return False
    try:
        from opentelemetry import trace
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
    except ImportError:
        log.warning("OTEL_* variables are set but OpenTelemetry is not installed: pip install 'saga[otel]'")
        return False
    exporter: SpanExporter
    if exporter_name == "console":
        exporter = ConsoleSpanExporter()
    elif exporter_name == "otlp":
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        except ImportError:
            log.warning(
                "OTEL_TRACES_EXPORTER=otlp needs opentelemetry-exporter-otlp-proto-http: pip install 'saga[otel]'"
            )
            return False
        exporter = OTLPSpanExporter()
    else:
        log.warning("OTEL_TRACES_EXPORTER=%s is not supported (otlp, console, none); tracing stays off", exporter_name)
        return False
    attributes = {} if env.get("OTEL_SERVICE_NAME") else {"service.name": "create-order-saga"}
    provider = TracerProvider(resource=Resource.create(attributes))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    log.info("tracing on: %s exporter", exporter_name)
    return True
