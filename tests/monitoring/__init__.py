"""Tests of the monitoring configs (Prometheus, Alertmanager, Grafana, compose, collector)."""
