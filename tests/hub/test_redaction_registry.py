"""The redactor's index of secrets sharing their first characters answers as a plain list
searched longest first would, through any sequence of secrets added and forgotten."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from qualflow.store.secrets import SamePrefix

# Secrets alike at the start (as the codes of one pool are), some contained in others.
_SECRETS = st.lists(
    st.text(alphabet="AB1", min_size=0, max_size=6).map(lambda tail: "GIFT" + tail),
    max_size=30,
)


@given(added=_SECRETS, forgotten=_SECRETS, text=st.text(alphabet="GIFTAB1 -", max_size=40))
def test_longest_match_at_each_position_is_the_plain_lists(
    added: list[str], forgotten: list[str], text: str
) -> None:
    group, plain = SamePrefix(), set[str]()
    for secret in added:
        group.add(secret)
        plain.add(secret)
    for secret in forgotten:
        group.discard(secret)
        plain.discard(secret)

    assert len(group) == len(plain)
    assert group.lengths == tuple(sorted({len(s) for s in plain}, reverse=True))
    for position in range(len(text)):
        longest = max((s for s in plain if text.startswith(s, position)), key=len, default=None)
        assert group.longest_at(text, position) == longest
