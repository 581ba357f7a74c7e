"""Feast definitions of the churn domain (see ``include/simulator.py``).

``customer_activity`` serves the latest activity features of each customer. Its batch source
is the directory of *published* feature partitions (``dt=YYYY-MM-DD/``) that the feature
pipeline fills with validated activity rows. The directory is computed when the repo is
applied, so the registry always points at the data root of the environment that applied it
(``$MLOPS_FEATURES_ROOT`` or ``<MLOPS_DATA_ROOT>/features``).
"""

from __future__ import annotations

from datetime import timedelta

from feast import Entity, FeatureService, FeatureView, Field, FileSource, ValueType
from feast.data_format import ParquetFormat
from feast.types import Float64, Int64, String

from mlops_provider.core.features import feature_source_uri, s3_endpoint_override

customer = Entity(
    name="customer",
    join_keys=["customer_id"],
    value_type=ValueType.INT64,
    description="A subscriber of the service.",
)

customer_activity_source = FileSource(
    name="customer_activity_source",
    path=feature_source_uri("customer_activity"),
    file_format=ParquetFormat(),
    timestamp_field="event_timestamp",
    s3_endpoint_override=s3_endpoint_override(),
    description="Validated daily activity rows, one dt=YYYY-MM-DD partition per day.",
)

customer_activity = FeatureView(
    name="customer_activity",
    entities=[customer],
    ttl=timedelta(days=30),
    schema=[
        Field(name="customer_id", dtype=Int64),
        Field(name="tenure_months", dtype=Int64),
        Field(name="monthly_charges", dtype=Float64),
        Field(name="total_charges", dtype=Float64),
        Field(name="sessions_last_7d", dtype=Int64),
        Field(name="avg_session_minutes", dtype=Float64),
        Field(name="support_tickets_30d", dtype=Int64),
        Field(name="days_since_last_login", dtype=Int64),
        Field(name="payment_failures_90d", dtype=Int64),
        Field(name="discount_pct", dtype=Float64),
        Field(name="plan", dtype=String),
        Field(name="region", dtype=String),
        Field(name="payment_method", dtype=String),
        Field(name="device", dtype=String),
    ],
    online=True,
    source=customer_activity_source,
    description="Latest activity features of a customer (30-day ttl).",
    tags={"domain": "churn"},
)

churn_model = FeatureService(
    name="churn_model",
    features=[customer_activity],
    description="Every feature the churn model is trained and scored on.",
)
