"""Checks of the deploy topologies (compose, Kubernetes, image, alerts): files only, no cluster."""
