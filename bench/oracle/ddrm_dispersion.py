"""Why DDRM at ``eta = 1`` over-disperses: its variance in A's singular coordinates, against the exact posterior.

Vanilla Gaussian bench (4x4, exact denoiser, ``s_t`` 0.01 -> 20), ``blur:sigma=0.8`` at
``sigma_y = 0.05``, 2,000 samples per cell. Below the crossover ``s_t' < nu_i`` DDRM's step is
``x0_hat + s_t' (sqrt(1 - eta^2) (ybar - x0_hat) / nu_i + eta z)``. At low noise the denoiser
barely changes a seen coordinate (``x0_hat ~ x_t``), so at ``eta = 1`` nothing pulls the state
back to ``ybar`` and each step's fresh ``s_t' z`` adds to the last: the variance is about
``sum of s_k^2`` over the steps below the crossover, which grows with the number of steps
(``(s_c^2 - s_min^2) / (1 - r^2)`` for geometric steps of ratio ``r``). ``eta < 1`` pulls the
state towards ``ybar`` by ``sqrt(1 - eta^2) s_t' / nu_i`` per step, which wins and collapses it.

    PYTHONPATH=$PWD python bench/oracle/ddrm_dispersion.py --threads 1
"""

from __future__ import annotations

import argparse

import torch

from bench.oracle.restore_gaussian import F64, SHAPE, D, Model, posterior, prior_of
from bench.quality._eval_common import write
from softdiff.corrupt import CorruptionProcess, GeometricNoise, Identity
from softdiff.restore import DDRM, build_operator, degrade, restore, singular_form
from softdiff.score import GaussianData

CELLS = ((1.0, 25), (1.0, 50), (1.0, 100), (1.0, 200), (0.95, 100), (0.85, 100))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--tag", default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    data = GaussianData.random(SHAPE, torch.Generator().manual_seed(0))
    s_min, s_max, sigma_y = 0.01, 20.0, 0.05
    process = CorruptionProcess(Identity(), GeometricNoise(s_min, s_max))
    _, q1_mean, q1_cov = data.marginal(process, 1.0)
    prior = prior_of(q1_mean, q1_cov - s_max**2 * torch.eye(D, dtype=F64), s_max)
    A = build_operator("blur:sigma=0.8", SHAPE, process)
    y = degrade(A, data.sample(1, torch.Generator().manual_seed(3)), sigma_y, seed=3)
    _, sig = posterior(data, A.matrix(SHAPE), y, sigma_y)
    form = singular_form(A, SHAPE)
    basis = form.to_coeffs(torch.eye(D, dtype=F64).reshape(D, *SHAPE)).reshape(D, D)  # column i: V^T e_i
    exact = torch.einsum("ji,jk,ki->i", basis, sig, basis)  # posterior variance of each coefficient
    nu = sigma_y / form.values.to(F64).flatten()
    best = int(nu.argmin())
    rows = []
    for eta, steps in CELLS:
        model = Model(data.denoiser(process), process, prior)
        out = restore(model, DDRM(eta, 1.0, steps), A, y, sigma_y, samples=args.n, batch_size=1)
        samples = out.samples[0]
        coeffs = form.to_coeffs(samples).reshape(args.n, D)
        var = coeffs.var(0)
        r = (s_min / s_max) ** (1 / steps)
        rows.append(
            {
                "eta": eta,
                "steps": steps,
                "variance_ratio_total": float(var.sum() / exact.sum()),
                "best_seen_nu": float(nu[best]),
                "best_seen_variance": float(var[best]),
                "best_seen_posterior_variance": float(exact[best]),
                "best_seen_ratio": float(var[best] / exact[best]),
                "accumulation_estimate": (float(nu[best]) ** 2 - s_min**2) / (1 - r**2) if eta == 1 else None,
            }
        )
        row = rows[-1]
        print(
            f"eta {eta:4.2f} steps {steps:3d}: total variance x{row['variance_ratio_total']:.2f}; best-seen coordinate "
            f"(nu {row['best_seen_nu']:.3f}) {row['best_seen_variance']:.4f} vs posterior "
            f"{row['best_seen_posterior_variance']:.4f} (x{row['best_seen_ratio']:.2f})"
            + (f", accumulation estimate {row['accumulation_estimate']:.4f}" if row["accumulation_estimate"] else ""),
            flush=True,
        )
    write("ddrm_dispersion", {"rows": rows}, None, args=args, kind="oracle")


if __name__ == "__main__":
    main()
