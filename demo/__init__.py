"""The 2026-01-01 torghut incident, replayed end to end (``make demo``, ``tests/e2e/test_demo.py``).

``scenario`` starts every system on free loopback ports, breaks them as the incident
did and watches remediator heal them; ``world`` simulates the Flink operator and the
websocket ingester's pods; ``prometheus`` plays Prometheus; ``service_proxy`` plays
the Kubernetes Service in front of the remediator replicas; ``timeline`` prints what
happens; ``report`` sums it up.
"""
