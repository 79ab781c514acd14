"""The part labels of each split method: the contracts `movierec.split` documents.

Each function turns rows (or their timestamps and users) into one uint8 label
per row, TRAIN, VAL or TEST, exactly as the module docstring of
`movierec.split` specifies, so a split can be rebuilt from its scheme alone.
Kept apart from reading, checking and writing, which are the same for every
method.
"""

import numpy as np

TRAIN, VAL, TEST = 0, 1, 2  # part labels, one uint8 per row
_NAMES = ("train", "validation", "test")  # as messages spell them


def random_parts(n, seed, val_fraction, test_fraction):
    """Part label (TRAIN, VAL, TEST) of each of `n` rows under the random contract."""
    n_test, n_val = round(n * test_fraction), round(n * val_fraction)
    perm = np.random.default_rng(seed).permutation(n)
    label = np.zeros(n, dtype=np.uint8)
    label[perm[:n_test]] = TEST
    label[perm[n_test : n_test + n_val]] = VAL
    return label


def temporal_global_parts(timestamp, n_val, n_test):
    """Part labels by one pair of time cutoffs; also returns (val_cutoff, test_cutoff).

    Needs ``1 <= n_test``, ``1 <= n_val`` and ``n_val + n_test < len(timestamp)``.
    The cutoffs are order statistics, found by `np.partition` in linear time:
    with ties going to the later part, only the boundary timestamps matter,
    so the full (timestamp, row) sort of the contract never has to be done.
    """
    n = len(timestamp)
    lo, hi = n - n_test - n_val, n - n_test
    bounds = np.partition(timestamp, [lo, hi])
    val_cutoff, test_cutoff = int(bounds[lo]), int(bounds[hi])
    del bounds
    label = np.zeros(n, dtype=np.uint8)
    label[timestamp >= val_cutoff] = VAL
    label[timestamp >= test_cutoff] = TEST
    return label, val_cutoff, test_cutoff


def temporal_user_parts(user, timestamp, n_val, n_test):
    """Part labels from each user's latest ratings (see the module docstring).

    One stable argsort of a combined (user, timestamp) key orders every user's
    ratings by time, ties by row (several times faster than `np.lexsort` on
    25M rows; two stable passes are the fallback when the key does not fit 63
    bits); each user's held-out rows are then the end of its run in that
    order, labelled by a cumulative sum, with no loop over users.
    """
    n = len(user)
    t_min = int(timestamp.min())
    ts_bits = (int(timestamp.max()) - t_min).bit_length()
    if ts_bits + int(user.max()).bit_length() <= 63:
        key = user.astype(np.int64)
        key <<= ts_bits
        key |= timestamp - t_min
        order = np.argsort(key, kind="stable")
        del key
    else:
        order = np.argsort(timestamp, kind="stable")
        order = order[np.argsort(user[order], kind="stable")]
    counts = np.bincount(user)
    spare = np.maximum(counts - 1, 0)  # what a user can give up and keep one in train
    user_test = np.minimum(n_test, spare)
    user_held = user_test + np.minimum(n_val, spare - user_test)
    # In sorted order user u's ratings end at ends[u]: its validation rows start at
    # ends - held, its test rows at ends - test. A step of +1 at each start and -2 at
    # each end, summed, is the label (0 train, 1 val, 2 test) of every sorted position.
    ends = np.cumsum(counts)
    step = np.bincount(
        np.concatenate([ends - user_held, ends - user_test, ends]),
        weights=np.repeat([1.0, 1.0, -2.0], len(ends)),
        minlength=n + 1,
    )
    label = np.empty(n, dtype=np.uint8)
    label[order] = np.cumsum(step[:n]).astype(np.uint8)
    return label


def kfold_parts(n, k, fold, seed, val_fraction):
    """Part labels of fold `fold` (1..k) of the kfold contract."""
    perm = np.random.default_rng(seed).permutation(n)
    pieces = np.array_split(perm, k)
    rest = np.concatenate(pieces[fold:] + pieces[: fold - 1])  # cyclic, after the test part
    label = np.zeros(n, dtype=np.uint8)
    label[pieces[fold - 1]] = TEST
    label[rest[: round(len(rest) * val_fraction)]] = VAL
    return label


def require_parts(where, sizes, why):
    """Raise unless every part (train, val, test sizes) is non-empty."""
    empty = [name for name, size in zip(_NAMES, sizes, strict=True) if size < 1]
    if empty:
        n_train, n_val, n_test = (max(int(size), 0) for size in sizes)
        raise ValueError(
            f"{where}: leaves the {' and '.join(empty)} part empty ({n_train} train, "
            f"{n_val} validation, {n_test} test rows; {why}); expected every part non-empty"
        )
