"""``qualflow demo``: the product on the embedded default, with nothing to set up.

:mod:`qualflow.demo.tour` is the client's scripted tour against a freshly seeded sandbox;
:mod:`qualflow.demo.servers` runs ASGI apps on loopback ports inside one process.
"""
