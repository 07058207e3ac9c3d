"""Alerting: on-call messages for failed tasks and missed publish deadlines."""
