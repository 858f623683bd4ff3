"""modelgate's roof: the ``modelgate`` command, the ``up`` supervisor and the demo.

Layers, bottom up (checked by import-linter in ``make lint``): ``schemas`` (wire and API contracts,
imports nothing of ours) → ``infra`` (what the services stand on: settings, AMQP, ClickHouse, HTTP,
model store, sandbox...) → the services (``ingress``, ``predictor``, ``metrics_consumer``,
``management_api``; none imports another) → this package, which may import them all.
"""
