"""Watching the platform: alerts and the publish deadline (``alerts``), forecast
accuracy by horizon and segment (``accuracy``), feature drift against the model's
reference bins (``drift``) and pipeline metrics to ``ops.metrics``/StatsD (``metrics``)."""
