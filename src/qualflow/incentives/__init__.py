"""Incentives: reward respondents when their survey response arrives.

An :class:`~qualflow.incentives.models.Incentive` says what a respondent gets (a Tango catalog
item, a gift code from a pool, or a reward paid by hand), under which limits and fraud rules.
Rewards are requested by the ``incentives.send_reward`` automation action or by a platform API
call (``POST /api/v1/incentives/{reference_id}/rewards``), and follow one lifecycle:
pending → held (review) → approved → ordered → sent, or blocked / failed / cancelled.

The ``incentives.send_reward`` action is registered by the engine's action registry
(:func:`qualflow.engine.actions.load_builtin_actions`), not here: importing this package stays
light: importing ``qualflow.incentives.models`` (the reward statuses a CLI command checks)
does not import the engine's runtime (DBOS).
"""
