"""The dot family's fold-in arithmetic: a closed-form ridge in the raw-score domain,
then Gauss-Newton on the real squared rating error of a bounded model.

`movierec.foldin` uses these for a new user's row ``[x, b]``: `raw_targets` and
`ridge_solve` give the start, `refine_bounded` finishes it under ``y_range``.
Plain numpy, float64.
"""

import numpy as np

#: A bounded target is ``logit((r - low) / (high - low))``, infinite for a rating
#: at a bound of ``y_range`` (0.5 under [0.5, 5.5]). The fraction is clipped into
#: ``(EPS, 1 - EPS)``: 0.01 puts such a rating at logit -4.6, a strong but finite
#: vote (ratings 1 to 5 span logit -2.2 to 2.2 under [0.5, 5.5]),
#: and the Gauss-Newton refinement then fits the rating itself, not the clipped logit.
EPS = 0.01
#: Gauss-Newton steps on the real loss of a bounded model (each one solve of
#: size n_factors + 1; it converges in 3-5, further steps stop early).
REFINE_STEPS = 10


def output_scale(raw, y_range):
    """`models.OutputScale` in numpy, on scores that already include the offset."""
    raw = np.asarray(raw, dtype=np.float64)
    if y_range is None:
        return raw
    low, high = y_range
    return low + (high - low) / (1.0 + np.exp(-raw))


def raw_targets(ratings, movie_bias, offset, y_range, eps=EPS):
    """What ``b + x . v_j`` should be for each rating, in the raw-score domain.

    Bounded: ``logit((r - low) / (high - low)) - offset - c_j`` with the
    fraction clipped into ``(eps, 1 - eps)`` (see `EPS`); unbounded: ``r -
    offset - c_j``.
    """
    ratings = np.asarray(ratings, dtype=np.float64)
    movie_bias = np.asarray(movie_bias, dtype=np.float64)
    if y_range is None:
        return ratings - offset - movie_bias
    low, high = y_range
    p = np.clip((ratings - low) / (high - low), eps, 1.0 - eps)
    return np.log(p) - np.log1p(-p) - offset - movie_bias


def ridge_solve(factors, targets, reg):
    """The closed-form minimiser of ``sum_j (t_j - b - x . v_j)^2 + reg (|x|^2 + b^2)``.

    Parameters
    ----------
    factors : array, shape (k, f)
        The rated movies' factors ``v_j``.
    targets : array, shape (k,)
    reg : float
        L2 strength on x and b; must be positive when k < f + 1 (fewer
        ratings than unknowns), and is what keeps such a user near 0.

    Returns
    -------
    (numpy.ndarray, float)
        ``x`` (f,) and ``b``, from the normal equations in float64.
    """
    design = design_matrix(factors)
    targets = np.asarray(targets, dtype=np.float64)
    reg = float(reg)
    if reg < 0 or (reg == 0 and design.shape[0] < design.shape[1]):
        raise ValueError(
            f"reg must be positive (and may be 0 only with at least {design.shape[1]} ratings), "
            f"got {reg} with {design.shape[0]} rating(s)"
        )
    gram = design.T @ design + reg * np.eye(design.shape[1])
    w = np.linalg.solve(gram, design.T @ targets)
    return w[:-1], float(w[-1])


def design_matrix(factors):
    """``[V | 1]``: a rated movie's factors and the constant the user bias multiplies."""
    factors = np.asarray(factors, dtype=np.float64)
    return np.hstack([factors, np.ones((factors.shape[0], 1))])


def bounded_loss(w, design, base, ratings, reg, y_range):
    """``sum_j (pred_j - r_j)^2 + reg |w|^2`` of a bounded model's row ``w = [x, b]``.

    ``base`` is ``offset + c_j``; ``pred_j = low + (high - low) sigmoid(base_j + [v_j, 1] . w)``.
    """
    pred = output_scale(base + design @ w, y_range)
    err = pred - ratings
    return float(err @ err + reg * (w @ w))


def refine_bounded(w, design, base, ratings, reg, y_range, steps=REFINE_STEPS):
    """Gauss-Newton on the real loss of a bounded model (`bounded_loss`), from `w`.

    Each step solves ``(J'J + reg I) d = -(J'e + reg w)`` with ``J = diag(s'_j)
    [V | 1]`` (``s'`` the slope of the output scale) and halves the step until
    the loss goes down; it stops when a step no longer lowers it.

    Returns
    -------
    (numpy.ndarray, int)
        The refined ``[x, b]`` and the steps taken.
    """
    low, high = y_range
    loss = bounded_loss(w, design, base, ratings, reg, y_range)
    eye = np.eye(design.shape[1])
    taken = 0
    for _ in range(int(steps)):
        sig = 1.0 / (1.0 + np.exp(-(base + design @ w)))
        err = low + (high - low) * sig - ratings
        jac = design * ((high - low) * sig * (1.0 - sig))[:, None]
        step = np.linalg.solve(jac.T @ jac + reg * eye, -(jac.T @ err + reg * w))
        for _halving in range(20):
            trial = w + step
            trial_loss = bounded_loss(trial, design, base, ratings, reg, y_range)
            if trial_loss < loss:
                break
            step = step / 2
        else:
            break
        improvement = loss - trial_loss
        w, loss = trial, trial_loss
        taken += 1
        if improvement <= 1e-12 * max(loss, 1.0):
            break
    return w, taken
