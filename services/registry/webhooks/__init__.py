"""Webhooks: HTTPS endpoints that get a jurisdiction's inbox events, for authorities without
Kafka; registration with an admin's approval, signed delivery, retries and a delivery log."""
