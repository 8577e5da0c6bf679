"""The PyTorch side of bench/pytorch.lua: the same mlp FlowVAE step in
PyTorch, timed the way bench/lib.lua times lvae's, and a check that both
compute the same flow.

    python3 bench/pytorch_flows.py time  --threads N --d 64 --batch 100 --K 1,5
    python3 bench/pytorch_flows.py check DIR

`time` prints one JSON object: for each model (vae, leapfrog with HVAE's
fixed tempering, qsl), K, the median/min seconds of one training step --
the ELBO with create_graph, then the gradient of -mean(ELBO) with respect
to every parameter -- and the force evaluations it made.

`check` reads DIR/*.npy written by bench/pytorch.lua (the decoder's
weights, x, z0, rho0 and each flow's h, gamma, alpha, T0), runs each flow
from the same start without noise, and writes DIR/torch_<name>.npy with
zK, rhoK, logdet, U(zK) and the gradient of sum(U(zK)) with respect to the
decoder's first weight (second order: it passes through every force), for
lvae to compare with its own.

The model is SPEC section 6.2's mlp: encoder 784-500-500 softplus, then
two Linear(500, d) heads for mu and softplus(sigma); decoder mirror
d-500-500 softplus then Linear(500, 784) Bernoulli logits; f32. The flows
follow SPEC section 3 with lvae's parametrisations: h = h_max sigmoid(a),
gamma = softplus(c), T0 = 1 + exp(tau) and T_k = (1 - T0) k^2/K^2 + T0.
"""

import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

D = 784
HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


def std_normal_log_prob(z):
    return -0.5 * (z * z).sum(1) - z.shape[1] * HALF_LOG_2PI


class Mlp(torch.nn.Module):
    """Linear layers joined by softplus."""

    def __init__(self, sizes):
        super().__init__()
        self.layers = torch.nn.ModuleList(
            torch.nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))

    def forward(self, v):
        for i, layer in enumerate(self.layers):
            v = layer(v)
            if i + 1 < len(self.layers):
                v = F.softplus(v)
        return v


def potential(decoder, x, z):
    """U(z) = -log p(x|z) - log N(z; 0, I), Bernoulli logits."""
    logits = decoder(z)
    log_lik = (x * logits - F.softplus(logits)).sum(1)
    return -(log_lik + std_normal_log_prob(z))


class Flow:
    """leapfrog (tempering fixed) or qsl, as SPEC section 3."""

    def __init__(self, kind, d, K, step=0.2, max_step=0.5, friction=0.5, T0=1.5,
                 learn=True):
        self.kind, self.d, self.K, self.max_step = kind, d, K, max_step
        p = step / max_step
        self.a = torch.full((d,), math.log(p / (1 - p)), requires_grad=learn)
        self.c = torch.full((d,), math.log(math.expm1(friction)), requires_grad=learn)
        self.tau = torch.tensor(math.log(T0 - 1))
        self.h_given = self.gamma_given = self.T0_given = None
        self.noise = True

    def parameters(self):
        learned = (self.a,) if self.kind == "leapfrog" else (self.a, self.c)
        return [t for t in learned if t.requires_grad]

    def h(self):
        return self.h_given if self.h_given is not None else self.max_step * torch.sigmoid(self.a)

    def gamma(self):
        return self.gamma_given if self.gamma_given is not None else F.softplus(self.c)

    def T0(self):
        if self.kind != "leapfrog":
            return torch.tensor(1.0)
        return self.T0_given if self.T0_given is not None else 1 + torch.exp(self.tau)

    def temperatures(self):
        T0, K = self.T0(), self.K
        return [(1 - T0) * k * k / (K * K) + T0 for k in range(K + 1)]

    def run(self, z, rho, U):
        """zK, rhoK, logdet [B], U(zK) [B], force evaluations."""
        B, d, h = z.shape[0], self.d, self.h()
        evals = 0

        def force(z):
            nonlocal evals
            evals += 1
            u = U(z)
            g, = torch.autograd.grad(u.sum(), z, create_graph=True)
            return u, g

        logdet = torch.zeros(B)
        if self.kind == "leapfrog":
            T = self.temperatures()
            u, g = force(z)
            for k in range(1, self.K + 1):
                rho_half = rho - 0.5 * h * g
                z = z + h * rho_half
                u, g = force(z)
                alpha = torch.sqrt(T[k] / T[k - 1])
                rho = alpha * (rho_half - 0.5 * h * g)
                logdet = logdet + d * torch.log(alpha)
        else:
            gamma = self.gamma()
            decay = torch.exp(-gamma * h)
            scale = torch.sqrt(1 - torch.exp(-2 * gamma * h))
            for _ in range(self.K):
                z = z + h * rho
                u, g = force(z)
                rho = decay * rho - h * g
                if self.noise:
                    rho = rho + scale * torch.randn_like(rho)
                logdet = logdet - (gamma * h).sum()
        return z, rho, logdet, u, evals


class FlowVAE(torch.nn.Module):
    def __init__(self, d, flow):
        super().__init__()
        self.encoder = Mlp([D, 500, 500])
        self.mu = torch.nn.Linear(500, d)
        self.sigma = torch.nn.Linear(500, d)
        self.decoder = Mlp([d, 500, 500, D])
        self.flow = flow
        self.grad_evals = 0

    def all_parameters(self):
        return list(self.parameters()) + (self.flow.parameters() if self.flow else [])

    def elbo(self, x):
        """log w per datapoint, one sample (SPEC section 2)."""
        h = F.softplus(self.encoder(x))
        mu, sigma = self.mu(h), F.softplus(self.sigma(h))
        eps = torch.randn_like(mu)
        z0 = mu + sigma * eps
        log_q0 = (-0.5 * eps * eps - torch.log(sigma) - HALF_LOG_2PI).sum(1)
        U = lambda z: potential(self.decoder, x, z)
        if self.flow is None:
            return -U(z0) - log_q0
        T0 = self.flow.T0()
        rho0 = torch.sqrt(T0) * torch.randn_like(z0)
        log_r0 = (-0.5 * rho0 * rho0 / T0 - 0.5 * torch.log(T0) - HALF_LOG_2PI).sum(1)
        zK, rhoK, logdet, U_end, self.grad_evals = self.flow.run(z0, rho0, U)
        return -U_end + std_normal_log_prob(rhoK) + logdet - log_q0 - log_r0


def time_fn(fn, warmup=0.05, warmup_calls=2, warmup_max=2.0, min_time=0.05, repeats=7):
    """bench/lib.lua's lib.time: warm-up, then the median of repeated samples."""
    calls, t0 = 0, time.perf_counter()
    while True:
        fn()
        calls += 1
        t = time.perf_counter() - t0
        if t >= warmup and (calls >= warmup_calls or t >= warmup_max):
            break
    iters = max(1, math.ceil(min_time / max(t / calls, 1e-9)))
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(iters):
            fn()
        samples.append((time.perf_counter() - t0) / iters)
    s = sorted(samples)
    return {"median": s[len(s) // 2], "min": s[0], "samples": samples, "iters": iters}


def option(args, name, default):
    return args[args.index(name) + 1] if name in args else default


def cmd_time(args):
    threads = int(option(args, "--threads", "0"))
    if threads > 0:
        torch.set_num_threads(threads)
    d, B = int(option(args, "--d", "64")), int(option(args, "--batch", "100"))
    Ks = [int(k) for k in option(args, "--K", "1,5").split(",")]
    repeats = int(option(args, "--repeats", "7"))
    torch.manual_seed(1234)
    x = torch.bernoulli(torch.full((B, D), 0.3))
    rows = []
    for name, K in [("vae", 0)] + [(n, K) for K in Ks for n in ("leapfrog", "qsl")]:
        flow = Flow(name, d, K) if K else None
        model = FlowVAE(d, flow)
        params = model.all_parameters()

        def step():
            elbo = model.elbo(x)
            return torch.autograd.grad(-elbo.mean(), params)

        r = time_fn(step, warmup=0.5, warmup_calls=5, min_time=0.2, repeats=repeats)
        rows.append({"model": name, "K": K, "median": r["median"], "min": r["min"],
                     "samples": r["samples"], "grad_evals": model.grad_evals})
    print(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads(),
                      "d": d, "batch": B, "rows": rows}))


def cmd_check(folder):
    load = lambda name: torch.from_numpy(np.load(os.path.join(folder, name + ".npy")))
    x, z_start, rho_start = load("x"), load("z0"), load("rho0")
    d = z_start.shape[1]
    decoder = Mlp([d, 500, 500, D]).double()
    with torch.no_grad():
        for i, layer in enumerate(decoder.layers):
            layer.weight.copy_(load("dec_w%d" % (i + 1)))
            layer.bias.copy_(load("dec_b%d" % (i + 1)))
    for name, kind in (("leapfrog", "leapfrog"), ("qsl", "qsl")):
        K = int(load(name + "_K").item())
        flow = Flow(kind, d, K)
        flow.noise = False
        flow.h_given = load(name + "_h")
        if kind == "qsl":
            flow.gamma_given = load(name + "_gamma")
        else:
            flow.T0_given = load(name + "_T0")
        z0 = z_start.clone().requires_grad_(True)
        zK, rhoK, logdet, U_end, evals = flow.run(z0, rho_start.clone(), lambda z: potential(decoder, x, z))
        g_w1, = torch.autograd.grad(U_end.sum(), decoder.layers[0].weight)
        out = {"zK": zK, "rhoK": rhoK, "logdet": logdet, "U": U_end, "grad_w1": g_w1}
        for key, value in out.items():
            np.save(os.path.join(folder, "torch_%s_%s.npy" % (name, key)), value.detach().numpy())
        np.save(os.path.join(folder, "torch_%s_evals.npy" % name), np.array([evals], dtype=np.float64))
    print("ok")


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "time":
        cmd_time(sys.argv[2:])
    elif len(sys.argv) == 3 and sys.argv[1] == "check":
        torch.set_default_dtype(torch.float64)
        cmd_check(sys.argv[2])
    else:
        sys.stderr.write("usage: pytorch_flows.py time [--threads N --d D --batch B --K 1,5 "
                         "--repeats R] | check DIR\n")
        sys.exit(2)
