"""Restoration methods against the exact posterior of Gaussian data (exact denoiser, float64).

For ``x ~ N(m, S)`` on 4x4 images and ``y = A x + n`` the posterior ``N(mu_y, S_y)`` is known,
so each method's bias is measured, not guessed: the error of its sample mean relative to
``||mu_y - m||`` and the Fréchet distance of its samples to ``N(mu_y, S_y)``, next to the
Fréchet distance of as many exact posterior draws (the Monte Carlo floor). ``--prior vanilla``
swaps the DCT-blur process for ``C = I`` (``s_t`` 0.01 -> 20); ``--cells field`` runs only the
methods the field compares against (DDRM, DiffPIR, PiGDM) next to the floor; ``--cells pigdm``
only PiGDM, under both weightings (``tweedie``: ``s_t^2``; ``authors``: ``r_t^2``, their code).

    PYTHONPATH=$PWD nice -n 10 python bench/oracle/restore_gaussian.py --threads 1
    PYTHONPATH=$PWD nice -n 10 python bench/oracle/restore_gaussian.py --threads 1 --cells field \
        --out bench/results/restore_gaussian_field.json
    PYTHONPATH=$PWD nice -n 10 python bench/oracle/restore_gaussian.py --threads 1 --cells field --prior vanilla \
        --out bench/results/restore_gaussian_field_vanilla.json
"""

from __future__ import annotations

import argparse
import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from bench.quality._eval_common import write
from softdiff.corrupt import CorruptionProcess, GaussianBlur, GeometricNoise, Identity
from softdiff.restore import (
    DDRM,
    DPS,
    PIGDM_WEIGHTINGS,
    DiffPIR,
    Isotropic,
    LevelEntry,
    PiGDM,
    Project,
    build_operator,
    degrade,
    restore,
)
from softdiff.samplers import GaussianPrior
from softdiff.score import GaussianData
from softdiff.stats import frechet_distance, moments

F64 = torch.float64
SHAPE = (1, 4, 4)
D = math.prod(SHAPE)


@dataclass
class Model:
    denoiser: object
    process: CorruptionProcess
    prior: GaussianPrior | None


def posterior(data: GaussianData, a: Tensor, y: Tensor, sigma_y: float) -> tuple[Tensor, Tensor]:
    gain = data.cov @ a.T @ torch.linalg.inv(a @ data.cov @ a.T + sigma_y**2 * torch.eye(D, dtype=F64))
    return data.mean + gain @ (y.flatten() - a @ data.mean), data.cov - gain @ a @ data.cov


def posterior_cov_t(data: GaussianData, process: CorruptionProcess, t: float) -> Tensor:
    c, _, cov_t = data.marginal(process, t)
    return data.cov - data.cov @ c.T @ torch.linalg.solve(cov_t, c @ data.cov)


def exact_cov(data: GaussianData, process: CorruptionProcess):
    def apply(v: Tensor, t: Tensor) -> Tensor:
        out = torch.empty_like(v).flatten(1)
        for value in t.unique():
            rows = t == value
            out[rows] = v[rows].flatten(1) @ posterior_cov_t(data, process, float(value))
        return out.reshape(v.shape)

    return apply


def prior_of(mean: Tensor, cov: Tensor, noise: float) -> GaussianPrior:
    evals, evecs = torch.linalg.eigh(cov)
    return GaussianPrior(mean.reshape(SHAPE), evecs, evals.clamp_min(0), noise)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=2000, help="posterior samples per cell")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--prior", choices=("blur", "vanilla"), default="blur")
    parser.add_argument("--cells", choices=("all", "field", "pigdm"), default="all")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--tag", default=None, help="result name tag (with --out unset)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    data = GaussianData.random(SHAPE, torch.Generator().manual_seed(0))
    if args.prior == "blur":
        process = CorruptionProcess(GaussianBlur(0.01, 2.0), GeometricNoise(0.01, 1.0))
    else:
        process = CorruptionProcess(Identity(), GeometricNoise(0.01, 20.0))
    c1, q1_mean, q1_cov = data.marginal(process, 1.0)
    s1 = float(process.s(torch.tensor(1.0, dtype=F64)))
    unconditional = prior_of(q1_mean, q1_cov - s1**2 * torch.eye(D, dtype=F64), s1)
    r2 = torch.tensor([float(posterior_cov_t(data, process, t).trace()) / D for t in torch.linspace(0, 1, 33).tolist()])

    def isotropic(t: Tensor) -> Tensor:  # tr Cov[x_0 | x_t] / D, linear between 33 knots
        pos = t.clamp(0, 1) * 32
        lo = pos.floor().long().clamp(max=31)
        return (r2[lo] * (1 - (pos - lo)) + r2[lo + 1] * (pos - lo)).to(t.dtype)

    tau = 0.7
    s_tau = float(process.s(torch.tensor(tau, dtype=F64)))
    problems = {
        **(
            {f"level:t={tau}, sigma_y = s_tau = {s_tau:.3f}": (f"level:t={tau}", s_tau)} if args.prior == "blur" else {}
        ),  # noqa: E501
        "pixelate:factor=2, sigma_y = 0.1": ("pixelate:factor=2", 0.1),
        "mask:fraction=0.5, sigma_y = 0.1": ("mask:fraction=0.5", 0.1),
        "blur:sigma=0.8, sigma_y = 0.05": ("blur:sigma=0.8", 0.05),
    }
    rows = []
    for label, (spec, sigma_y) in problems.items():
        A = build_operator(spec, SHAPE, process)
        x = data.sample(1, torch.Generator().manual_seed(3))
        y = degrade(A, x, sigma_y, seed=3)
        mu, sig = posterior(data, A.matrix(SHAPE), y, sigma_y)
        conditional = prior_of(c1 @ mu, c1 @ sig @ c1.T, s1)
        floor = (
            mu
            + torch.randn(args.n, D, generator=torch.Generator().manual_seed(9), dtype=F64)
            @ torch.linalg.cholesky(sig).T
        )
        cells = [("exact posterior draws (floor)", None, None)]
        field = [
            ("ddrm, eta 0.85, eta_b 1", DDRM(0.85, 1.0, args.steps), unconditional),
            ("ddrm, eta 1, eta_b 1", DDRM(1.0, 1.0, args.steps), unconditional),
            ("diffpir, lambda 1, zeta 0.3", DiffPIR(1.0, 0.3, args.steps), unconditional),
            ("diffpir, lambda 1, zeta 1", DiffPIR(1.0, 1.0, args.steps), unconditional),
            ("pigdm, r_t^2 I, ancestral", PiGDM(isotropic, 1.0, "ancestral", args.steps), unconditional),
            ("pigdm, r_t^2 I, euler", PiGDM(isotropic, 1.0, "euler", args.steps), unconditional),
        ]
        if args.cells == "pigdm":
            cells += [
                (
                    f"pigdm, r_t^2 I, {sampler}, {w}",
                    PiGDM(isotropic, 1.0, sampler, args.steps, weighting=w),
                    unconditional,
                )
                for w in PIGDM_WEIGHTINGS
                for sampler in ("ancestral", "euler")
            ]
        if args.cells == "field":
            cells += field
        if args.cells == "all" and A.level is not None:
            cells += [(f"level, {s}", LevelEntry(s, args.steps), None) for s in ("ancestral", "momentum")]
        cells += (
            []
            if args.cells == "pigdm"
            else [
                (
                    "project, exact S_t, start p(x_1 | y)",
                    Project(exact_cov(data, process), "ancestral", args.steps),
                    conditional,
                ),
                (
                    "project, exact S_t, start p(x_1)",
                    Project(exact_cov(data, process), "ancestral", args.steps),
                    unconditional,
                ),
                (
                    "project, r_t^2 I, start p(x_1)",
                    Project(Isotropic(isotropic), "ancestral", args.steps),
                    unconditional,
                ),
            ]
        )
        if args.cells == "all":
            cells += [(f"dps, scale {z}", DPS(z, "ancestral", args.steps), unconditional) for z in (0.1, 0.3, 1.0)]
            cells += field
        for name, method, prior in cells:
            start = time.perf_counter()
            if method is None:
                samples = floor
            else:
                model = Model(data.denoiser(process), process, prior)
                samples = restore(model, method, A, y, sigma_y, samples=args.n, batch_size=1).samples[0].flatten(1)
            mean, cov = moments(samples)
            row = {
                "problem": label,
                "method": name,
                "mean_error": float((mean - mu).norm() / (mu - data.mean).norm()),
                "frechet": frechet_distance(mean, cov, mu, sig),
                "trace_ratio": float(cov.trace() / sig.trace()),
                "seconds": time.perf_counter() - start,
            }
            rows.append(row)
            print(
                f"| {label} | {name} | {row['mean_error']:.3f} | {row['frechet']:.4f} | {row['trace_ratio']:.2f} |",
                flush=True,
            )
    settings = vars(args) | {"shape": SHAPE, "steps": args.steps, "out": str(args.out)}
    write("restore_gaussian", {"settings": settings, "rows": rows}, args.out, args=args, kind="oracle")


if __name__ == "__main__":
    main()
