"""The fused training step of the dot and hybrid models (gradients written by hand)."""

import torch

from movierec.training.fast.dense_adam import DenseAdam
from movierec.training.fast.row_adam import RowAdam
from movierec.training.fast.workers import Workers


class DotStep:
    """Fused training step of a `models.DotModel` or `models.HybridModel`.

    The gradient is written out by hand: the model's tables are packed as
    ``U = [user_emb | user_bias | 1]`` and ``M = [movie_emb | 1 | movie_bias]``
    so that one row dot product is the whole score ``u . m + b_u + b_m``; the
    constant columns are frozen. For the loss ``MSE(pred)`` the gradient with
    respect to the score is ``g = 2 (pred - r) dpred/dscore / B`` and the
    rows' gradients are ``g * M[m]`` and ``g * U[u]``. A hybrid adds its
    linear head ``l = u . w_u + m . w_m + c`` (loss weights ``w_dot``,
    ``w_linear``): rows get ``g_l * w_u`` (``w_m``) more, and the head's own
    gradient is ``sum g_l * u`` (``m``, 1), fed to Adam. A test checks both
    against autograd. `sync` writes the packed tables back into the module.

    On CPU a batch is cut into cache-sized chunks, dealt round-robin to
    `workers` Python threads (PyTorch releases the GIL inside each
    operation) that each sum into their own accumulators; the optimizer then
    updates disjoint halves of the touched rows in parallel (see `Workers`).
    The work split is static and sums are taken in a fixed order, so results
    are the same on every run with the same number of workers.
    """

    def __init__(self, model, weight_decay, chunk, workers=1, loss_weights=None):
        self.model = model
        self.chunk = int(chunk)
        self.workers = max(1, int(workers))
        f = model.user_emb.weight.shape[1]
        self.n_factors = f
        with torch.no_grad():
            ones_u = torch.ones_like(model.user_bias.weight)
            ones_m = torch.ones_like(model.movie_bias.weight)
            self.users = torch.cat([model.user_emb.weight, model.user_bias.weight, ones_u], 1)
            self.movies = torch.cat([model.movie_emb.weight, ones_m, model.movie_bias.weight], 1)
        self.user_opt = RowAdam(self.users, weight_decay, [f + 1], self.workers)
        self.movie_opt = RowAdam(self.movies, weight_decay, [f], self.workers)
        self.y_range = model.output.y_range
        self.offset = model.output.offset
        self.linear = getattr(model, "linear", None)
        self.name = "fast-dot" if self.linear is None else "fast-hybrid"
        if self.linear is not None:
            self.w_linear = float(loss_weights["linear"])
            self.w_dot = float(loss_weights["dot"])
            self.linear_opt = DenseAdam([self.linear.weight, self.linear.bias])
            # Per worker: gradient of [w_u (padded to the packed width) | w_m | c].
            self.linear_grads = [self.users.new_zeros(2, f + 2) for _ in range(self.workers)]
            self.linear_bias_grads = [self.users.new_zeros(()) for _ in range(self.workers)]
        else:
            self.w_dot = 1.0
        self.pool = Workers(self.workers, "dotstep")

    def _score_grad(self, score, r, scale):
        """Error of the scaled score, and ``scale * err * dpred/dscore`` (in place)."""
        if self.y_range is None:
            err = score.add_(self.offset).sub_(r)
            return err, err * scale
        low, high = self.y_range
        sig = score.add_(self.offset).sigmoid_()
        err = sig * (high - low)
        err.add_(low).sub_(r)
        # d pred / d score = (high - low) * sig * (1 - sig)
        return err, sig.sub_(sig * sig).mul_(err).mul_(scale * (high - low))

    @torch.no_grad()
    def _chunks(self, worker, job):
        user, movie, rating, user_pos, movie_pos, starts, batch, head = job
        sse = torch.zeros((), device=rating.device)
        for start in starts:
            stop = min(start + self.chunk, user.shape[0])
            u, m, r = user[start:stop], movie[start:stop], rating[start:stop]
            ue = self.users.index_select(0, u)
            me = self.movies.index_select(0, m)
            err, grad = self._score_grad((ue * me).sum(1), r, 2.0 * self.w_dot / batch)
            sse += torch.dot(err, err)
            grad = grad.unsqueeze(1)
            if head is None:
                movie_grad = ue.mul_(grad)
                user_grad = me.mul_(grad)
            else:
                w_user, w_movie, bias = head
                linear = torch.mv(ue, w_user).add_(torch.mv(me, w_movie)).add_(bias)
                _, lin_grad = self._score_grad(linear, r, 2.0 * self.w_linear / batch)
                self.linear_grads[worker][0].add_(torch.mv(ue.t(), lin_grad))
                self.linear_grads[worker][1].add_(torch.mv(me.t(), lin_grad))
                self.linear_bias_grads[worker].add_(lin_grad.sum())
                movie_grad = ue.mul_(grad).addr_(lin_grad, w_movie)
                user_grad = me.mul_(grad).addr_(lin_grad, w_user)
            self.user_opt.accumulate(user_pos[start:stop], user_grad, worker)
            self.movie_opt.accumulate(movie_pos[start:stop], movie_grad, worker)
        return sse

    @torch.no_grad()
    def _begin(self, worker, job):
        return [opt.begin_batch(index) for opt, index in job]

    @torch.no_grad()
    def _update(self, worker, job):
        for opt, (start, stop), lr, batch in job:
            opt.update(lr, batch, start, stop)

    def _head(self):
        """The linear head's weights padded to the packed widths (w_u, w_m, c)."""
        if self.linear is None:
            return None
        f = self.n_factors
        weight = self.linear.weight.detach()[0]
        w_user = self.users.new_zeros(f + 2)
        w_movie = self.users.new_zeros(f + 2)
        w_user[:f] = weight[:f]
        w_movie[:f] = weight[f:]
        return w_user, w_movie, self.linear.bias.detach()[0]

    def accumulate(self, user, movie, rating):
        """Sum the batch's per-row gradients; returns its summed squared error."""
        batch = rating.shape[0]
        starts = list(range(0, batch, self.chunk))
        head = self._head()
        tables = [(self.user_opt, user), (self.movie_opt, movie)]
        begun = self.pool.run(self._begin, [tables[w :: self.workers] for w in range(self.workers)])
        n = self.workers  # table i went to worker i % n, as its (i // n)-th
        user_pos, movie_pos = (begun[i % n][i // n] for i in range(len(tables)))
        jobs = [
            (user, movie, rating, user_pos, movie_pos, starts[w :: self.workers], batch, head)
            for w in range(self.workers)
        ]
        sse = None
        for part in self.pool.run(self._chunks, jobs):
            sse = part if sse is None else sse + part
        return sse

    def apply(self, batch, lr):
        """Update the rows of the accumulated batch (of `batch` ratings)."""
        jobs = [[] for _ in range(self.workers)]
        for opt in (self.user_opt, self.movie_opt):
            for w, part in enumerate(opt.parts(self.workers)):
                jobs[w].append((opt, part, lr, batch))
        self.pool.run(self._update, jobs)
        if self.linear is not None:
            f = self.n_factors
            grads = self.linear_grads[0].clone()
            bias = self.linear_bias_grads[0].clone()
            for w in range(self.workers):
                if w:
                    grads += self.linear_grads[w]
                    bias += self.linear_bias_grads[w]
                self.linear_grads[w].zero_()
                self.linear_bias_grads[w].zero_()
            weight_grad = torch.cat([grads[0, :f], grads[1, :f]]).unsqueeze(0)
            self.linear_opt.step([weight_grad, bias.reshape(1)], lr)

    def start_epoch(self, generator):
        pass

    def train_batch(self, user, movie, rating, lr):
        """One optimizer step on a batch; returns the batch's summed squared error."""
        sse = self.accumulate(user, movie, rating)
        self.apply(rating.shape[0], lr)
        return sse

    @torch.no_grad()
    def sync(self):
        f = self.n_factors
        self.model.user_emb.weight.copy_(self.users[:, :f])
        self.model.user_bias.weight.copy_(self.users[:, f : f + 1])
        self.model.movie_emb.weight.copy_(self.movies[:, :f])
        self.model.movie_bias.weight.copy_(self.movies[:, f + 1 : f + 2])

    def finish(self):
        self.sync()
        self.pool.close()
