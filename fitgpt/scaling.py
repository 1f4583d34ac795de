"""
Scaling rules: the loss L(N, D) = E + A / N^alpha + B / D^beta a model of N parameters reaches on
D tokens (published constants, or fitted to your own runs), what repeated data is worth, and
GPT-3's tokens per step and learning rate by model size. plan.py ranks its options with these.

The law's form is Hoffmann et al. 2022's: the published constants plan.py ranks its options with
(--law), and one fitted to your own runs (plan.py --fit), fitted as their approach 3 does (a Huber
loss on log-loss residuals, from several starting points) to every val loss the runs logged: N a
run's parameters, D the tokens it had trained on at that evaluation. A fitted law then replaces
the published one in plan.py (--law FILE or --fit_file FILE), on your data and tokenizer.

An evaluation in the middle of a run is taken as the loss of a run of that length: close for a
run whose learning rate decays late (lr_schedule='wsd'), pessimistic for a cosine run early on, so
the fit is best from the final evaluations of runs of several lengths.
"""

import json
import math
import os
from dataclasses import asdict, dataclass, field

import numpy as np

from fitgpt.errors import ConfigError, DataError
from fitgpt.runs import Run

NAMES = ("E", "A", "B", "alpha", "beta")
HUBER_DELTA = 1e-3  # Hoffmann et al. 2022's delta, on log-loss residuals
MIN_POINTS = 8


@dataclass(frozen=True)
class Law:
    """L(N, D): the loss (nats per token) of N parameters, embeddings included as Hoffmann et al.
    count them, trained on D tokens of fresh data; name says where the constants come from."""

    name: str
    E: float
    A: float
    B: float
    alpha: float
    beta: float

    def loss(self, params: float, tokens: float) -> float:
        return self.E + self.A / params**self.alpha + self.B / tokens**self.beta

    def _exponents(self) -> tuple[float, float, float]:
        """(a, b, G) of Hoffmann et al.'s eq. 4: N_opt = G (C/6)^a, D_opt = (C/6)^b / G."""
        a, b = self.beta / (self.alpha + self.beta), self.alpha / (self.alpha + self.beta)
        return a, b, (self.alpha * self.A / (self.beta * self.B)) ** (1 / (self.alpha + self.beta))

    def compute_optimal(self, flops: float) -> tuple[float, float]:
        """(N, D) of the lowest loss at training compute flops = 6 N D (Hoffmann et al. 2022, eq. 4)."""
        a, b, g = self._exponents()
        return g * (flops / 6) ** a, (flops / 6) ** b / g

    def params_for(self, tokens: float) -> float:
        """The N whose compute-optimal training is `tokens` tokens: D_opt = (C/6)^b / G solved for C."""
        _, b, g = self._exponents()
        return (tokens * g) ** (1 / b) / tokens


# Besiroglu et al. 2024, "Chinchilla Scaling: A replication attempt" (arXiv:2404.10102), table 1:
# Hoffmann et al.'s approach 3 refitted to the data of their figure 4. Unlike the published fit it
# agrees with their approaches 1 and 2 (table 3: ~400M parameters on 8.0B tokens at 1.92e19 FLOPs).
BESIROGLU = Law("Besiroglu et al. 2024's refit of Chinchilla", 1.8172, 482.01, 2085.43, 0.3478, 0.3658)
# Hoffmann et al. 2022 ("Chinchilla"), approach 3 as published: fitted on their MassiveText data; its
# compute-optimal models are 25-45 % smaller than their approaches 1 and 2 give (Besiroglu et al.)
CHINCHILLA3 = Law("Chinchilla's approach 3 as published (Hoffmann et al. 2022)", 1.69, 406.4, 410.7, 0.34, 0.28)
LAWS = {"besiroglu": BESIROGLU, "chinchilla3": CHINCHILLA3, "hoffmann": CHINCHILLA3}


def law_named(name: str) -> Law:
    """A published law by its --law name, or the law a plan.py --fit file holds."""
    if name.lower() in LAWS:
        return LAWS[name.lower()]
    if not os.path.exists(name):
        raise ConfigError(
            f"--law {name}: use besiroglu (the default), chinchilla3 (or hoffmann), or a plan.py --fit file"
        )
    return Fit.load(name).law(name)


# -----------------------------------------------------------------------------
# Repeated data: what epochs over the same tokens are worth.

DEFAULT_LAW = BESIROGLU
# Muennighoff et al. 2023, "Scaling Data-Constrained Language Models" (eq. 5 and their fit): a
# repeated token is worth less than a fresh one, decaying with the repeats R_D = D / U_D - 1 with
# constant R*_D = 15.4; parameters beyond U_N, the model compute-optimal for the unique data,
# decay faster, with R*_N = 5.3 in multiples of U_N. plan.py counts each up to one decay constant:
# past it the next epoch (or parameter) is worth under 1/e of a fresh one, and nothing is spent on it.
REPEAT_DECAY = 15.4
EXCESS_DECAY = 5.3


def effective(x: float, unique: float, decay: float) -> float:
    """What x tokens (or parameters) drawn from `unique` are worth in fresh ones: Muennighoff et
    al.'s U + U R* (1 - exp(-R / R*)), R = x / U - 1 the repeats (or excess) beyond U, counted up to
    one decay constant."""
    if x <= unique:
        return x
    repeats = min(x / unique - 1, decay)
    return unique + unique * decay * (1 - math.exp(-repeats / decay))


def effective_tokens(tokens: float, unique: float | None) -> float:
    """Tokens worth of fresh data that `tokens` of training on `unique` tokens is: about 4 epochs
    are nearly as good as new data, 16 worth about 11 (Muennighoff et al. 2023's R*_D)."""
    return effective(tokens, unique, REPEAT_DECAY) if unique else tokens


def effective_params(params: float, unique: float | None, law: Law = DEFAULT_LAW) -> float:
    """Parameters worth of a model trained on `unique` tokens: beyond U_N, the model the law finds
    compute-optimal for them, each is worth less (Muennighoff et al. 2023's R*_N)."""
    return effective(params, law.params_for(unique), EXCESS_DECAY) if unique else params


def predicted_loss(params: float, tokens: float, unique: float | None = None, law: Law = DEFAULT_LAW) -> float:
    """Loss (nats per token) the law predicts for `params` parameters trained on `tokens` tokens,
    repeats of `unique` unique tokens discounted on both sides: never below the same run's on
    fresh data. Approximate, and on the law's own data."""
    return law.loss(effective_params(params, unique, law), effective_tokens(tokens, unique))


# -----------------------------------------------------------------------------
# GPT-3's hyperparameters by model size (Brown et al. 2020, table 2.1): a searched model's tokens
# per step, and a written config's learning rate and warmup.

WARMUP_TOKENS = 375e6  # GPT-3's warmup, which nanoGPT's 715 iterations x 0.5M tokens also is
# learning rates by size, interpolated in log-log (learning_rate_for)
GPT3_LR = ((125e6, 6e-4), (350e6, 3e-4), (760e6, 2.5e-4), (1.3e9, 2e-4), (2.7e9, 1.6e-4), (6.7e9, 1.2e-4), (13e9, 1e-4))


def tokens_per_step_for(params: float) -> int:
    """About GPT-3's batch size for a model of this size: 0.5M tokens below 1B, 1M below 5B, else 2M."""
    return 2**19 if params < 1e9 else 2**20 if params < 5e9 else 2**21


def learning_rate_for(params: float) -> float:
    """GPT-3's learning rate for this size, interpolated in log-log (1e-3 at most for tiny models)."""
    points = [(math.log(n), math.log(lr)) for n, lr in GPT3_LR]
    x = math.log(params)
    (x0, y0), (x1, y1) = (points[0], points[1]) if x < points[0][0] else (points[-2], points[-1])
    for a, b in zip(points, points[1:]):
        if a[0] <= x <= b[0]:
            (x0, y0), (x1, y1) = a, b
    return min(1e-3, math.exp(y0 + (y1 - y0) * (x - x0) / (x1 - x0)))


# -----------------------------------------------------------------------------
# A law fitted to your own runs.


@dataclass
class Fit:
    E: float
    A: float
    B: float
    alpha: float
    beta: float
    sd: dict = field(default_factory=dict)  # standard error of each constant
    points: int = 0
    rms_log_error: float = 0.0
    sizes: list = field(default_factory=list)  # the parameter counts it was fitted on
    tokens: list = field(default_factory=list)  # the smallest and largest token count
    source: dict = field(default_factory=dict)  # the runs, their dataset and tokenizer

    def law(self, path: str = "") -> Law:
        """The fitted constants as a Law, named after the file they were loaded from."""
        name = f"the law in {path or 'this fit'}, fitted to {len(self.source.get('runs', []))} runs"
        return Law(name, *(getattr(self, n) for n in NAMES))

    def loss(self, params: float, tokens: float) -> float:
        return self.law().loss(params, tokens)

    def compute_optimal(self, flops: float) -> tuple[float, float]:
        return self.law().compute_optimal(flops)

    def save(self, path: str) -> None:
        with open(path, "w", encoding="utf-8") as f:
            json.dump(asdict(self), f, indent=1)

    @classmethod
    def load(cls, path: str) -> "Fit":
        try:
            with open(path, encoding="utf-8") as f:
                return cls(**json.load(f))
        except FileNotFoundError:
            raise ConfigError(f"{path}: no such file; write one with plan.py --fit RUN_DIR ...") from None
        except (ValueError, TypeError) as e:
            raise DataError(f"{path}: not a law plan.py --fit wrote ({e})") from None


def run_points(paths: list[str]) -> tuple[np.ndarray, dict]:
    """(rows of N, D, val loss) from the runs' folders, and what they were trained on."""
    rows, datasets = [], set()
    for path in paths:
        run = Run.load(path)
        if not run.params:
            raise DataError(f"{path}: no config.json with the model's size; the fit needs runs train.py wrote")
        rows += [(run.params, r["tokens"], r["val_loss"]) for r in run.rows("val_loss") if r.get("tokens", 0) > 0]
        dataset = run.config.get("dataset", {})
        datasets.add((dataset.get("path"), dataset.get("tokenizer")))
    source = {
        "runs": list(paths),
        "datasets": sorted({d for d, _ in datasets if d}),
        "tokenizers": sorted({t for _, t in datasets if t}),
    }
    return np.array(rows, dtype=float).reshape(-1, 3), source


def check(points: np.ndarray) -> list[str]:
    """Refuse what cannot be fitted; warn about what fits poorly."""
    sizes, tokens = np.unique(points[:, 0]), np.unique(points[:, 1])
    if len(sizes) < 2:
        raise ConfigError(
            "the runs have one model size only: the fit needs runs of two or more sizes (three or more fit better)"
        )
    if len(tokens) < 3:
        raise ConfigError("the runs have val losses at fewer than 3 token counts; evaluate more often (eval_interval)")
    if len(points) < MIN_POINTS:
        raise ConfigError(f"{len(points)} val losses are too few to fit 5 constants; give at least {MIN_POINTS}")
    warnings = []
    if len(sizes) == 2:
        warnings.append("only 2 model sizes: E, A and alpha trade off against each other; add a third size")
    if sizes[-1] / sizes[0] < 2:
        warnings.append(f"the sizes span {sizes[-1] / sizes[0]:.2f}x only: alpha is poorly determined below ~4x")
    if tokens[-1] / tokens[0] < 4:
        warnings.append(f"the token counts span {tokens[-1] / tokens[0]:.2f}x only: beta is poorly determined")
    return warnings


def fit(points: np.ndarray, source: dict | None = None) -> tuple[Fit, list[str]]:
    """The law fitted to rows of (N, D, loss), and warnings about its quality."""
    from scipy.optimize import least_squares  # scipy is needed here only

    warnings = check(points)
    n, d, loss = (np.log(points[:, i]) for i in range(3))

    def residuals(theta: np.ndarray) -> np.ndarray:  # theta: log E, log A, log B, alpha, beta
        e, a, b, alpha, beta = theta
        return np.logaddexp(np.logaddexp(e, a - alpha * n), b - beta * d) - loss

    best = None
    floor = math.log(points[:, 2].min())
    for alpha, beta, share in ((0.3, 0.3, 0.5), (0.5, 0.5, 0.8), (0.2, 0.6, 0.6), (0.6, 0.2, 0.6), (1.0, 1.0, 0.9)):
        # start with E at a share of the lowest loss and the two power terms at comparable sizes
        e0 = floor + math.log(share)
        rest = math.log(points[:, 2].mean() - math.exp(e0))
        start = np.array([e0, rest + alpha * n.mean(), rest + beta * d.mean(), alpha, beta])
        bounds = ([-10, -20, -20, 0.01, 0.01], [10, 60, 60, 3.0, 3.0])
        result = least_squares(residuals, start, bounds=bounds, loss="huber", f_scale=HUBER_DELTA)
        if best is None or result.cost < best.cost:
            best = result
    theta, r = best.x, residuals(best.x)
    dof = max(1, len(r) - len(theta))
    # a constant that ran to a bound of the search is not determined by the data: its standard
    # error is infinite, and the others' come from the Gauss-Newton covariance of the free ones
    at_bound = np.isclose(theta, bounds[0], atol=1e-4) | np.isclose(theta, bounds[1], atol=1e-4)
    sd_theta = np.full(len(theta), np.inf)
    free = ~at_bound
    try:
        jac = best.jac[:, free]
        covariance = np.linalg.inv(jac.T @ jac) * float(r @ r) / dof
        sd_theta[free] = np.sqrt(np.clip(np.diag(covariance), 0, None))
    except np.linalg.LinAlgError:
        pass
    values = [math.exp(theta[0]), math.exp(theta[1]), math.exp(theta[2]), theta[3], theta[4]]
    # E, A, B were fitted as logarithms: their standard errors scale with their values
    sds = [values[i] * sd_theta[i] for i in range(3)] + [sd_theta[3], sd_theta[4]]
    result = Fit(
        *values,
        sd=dict(zip(NAMES, (float(s) for s in sds))),
        points=len(points),
        rms_log_error=float(np.sqrt(np.mean(r**2))),
        sizes=sorted(int(s) for s in np.unique(points[:, 0])),
        tokens=[int(points[:, 1].min()), int(points[:, 1].max())],
        source=source or {},
    )
    loose = [name for name in NAMES if not result.sd[name] < 0.5 * abs(getattr(result, name))]
    if loose:
        warnings.append(
            f"{', '.join(loose)} not determined by these runs (at a bound of the search, or a standard error "
            f"over half the value): the predictions are not to be trusted; add runs of more sizes"
        )
    return result, warnings
