"""Operator commands beside the run: doctor, status, alerts and the demo."""
