"""The property suite over every registered optimizer (see dynverify.suite).

``pytest --hypothesis-profile=deep`` runs it with thousands of examples per claim.
"""

from dynverify.suite import test_claim  # noqa: F401 -- collected here
