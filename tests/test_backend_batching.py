"""How the local backend groups and batches score requests (no model needed)."""

from gecko_distill.llm.transformers_backend import _batches, _prefix_groups


def item(ids, n_cont=2, n_suffix=1):
    return {"ids": list(ids), "n_cont": n_cont, "n_suffix": n_suffix, "choices": []}


def test_requests_sharing_a_long_prefix_are_grouped_before_their_scored_tokens():
    passage = list(range(100, 150))
    encoded = [item(passage + [1, 2, 3, 4]), item([7] * 60), item(passage + [1, 9, 9, 9]), item(passage[:10] + [5] * 44)]
    groups = _prefix_groups(encoded, min_shared=32, window=511)
    # 51 tokens are common, but position 50 predicts the first scored token, so it must be re-run
    assert groups == [(50, [0, 2])]


def test_the_shared_part_never_covers_a_position_that_is_read():
    same = list(range(40))
    encoded = [item(same, n_cont=5, n_suffix=3), item(same, n_cont=5, n_suffix=3)]
    assert _prefix_groups(encoded, min_shared=16, window=511) == [(31, [0, 1])]
    assert _prefix_groups(encoded, min_shared=32, window=511) == []


def test_groups_longer_than_the_attention_window_are_not_shared():
    long = list(range(600))
    assert _prefix_groups([item(long + [1, 2, 3]), item(long + [4, 5, 6])], min_shared=32, window=511) == []


def test_batches_respect_the_budget_and_keep_at_least_one_item():
    widths = [10, 10, 20, 40, 100]
    batches = list(_batches(widths, lambda b: len(b) * max(b) <= 40))
    assert batches == [[10, 10], [20], [40], [100]]
