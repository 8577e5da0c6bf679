"""bench/peers/torch_models.py -- SPEC section 6.2's models in PyTorch, written
independently of lvae, for `make bench-peer`.

    model = FlowVAE.from_manifest(manifest)     # the row bench/peer.lua describes
    objective = model.objective(x, FreshNoise())   # [B], as scripts/images.lua's step
    opt = SpecAdamax(model.parameters(), lr=5e-4, eps=1e-7)

The architectures (mlp: 784-500-500 softplus and its mirror; conv: three
5x5 stride-2 SAME convolutions, a 450-unit layer and the mirror image with
transposed convolutions), the flows of SPEC section 3 (leapfrog with
tempering none / fixed / free, qsl, qsl2, Euler with its Hessian, planar)
and the flow ELBO of SPEC section 2. Parameters are named and laid out as
lvae names them (Linear [out, in], Conv2d [out, in, kh, kw],
ConvTranspose2d [in, out, kh, kw] -- PyTorch's own layouts; Sequential
children count from 0 here and from 1 in lvae, see lvae_name), so that
both sides can start from the same weights. The flows use lvae's
parametrisations, which the manifest states: h = max_step sigmoid(a),
gamma = softplus(c), T0 = 1 + exp(tau) (fixed tempering) or
prod_k sigmoid(a_k)^-2 (free).

The force is torch.autograd.grad(U.sum(), z, create_graph=True); the
Hessian of Euler's log-determinant takes d more reverse passes through it
(as lvae does). Noise comes from a noise source: FreshNoise draws with
torch.randn (training), GivenNoise hands out lvae's draws in lvae's order
(the agreement check): eps_z, then eps_rho, then each step's xi_k.
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

PIXELS = 784
HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


# ---- noise ------------------------------------------------------------------

class FreshNoise:
    """Standard normal draws from torch's generator."""

    def normal(self, name, shape, like):
        return torch.randn(shape, dtype=like.dtype)


class GivenNoise:
    """lvae's draws, handed out in the order lvae took them."""

    def __init__(self, draws):
        self.draws = list(draws)      # [(name, tensor)]
        self.next = 0

    def normal(self, name, shape, like):
        if self.next >= len(self.draws):
            raise RuntimeError("the model asked for more noise (%s) than lvae drew" % name)
        given_name, t = self.draws[self.next]
        self.next += 1
        if given_name != name or tuple(t.shape) != tuple(shape):
            raise RuntimeError("the model asked for %s %s, lvae's next draw is %s %s"
                               % (name, tuple(shape), given_name, tuple(t.shape)))
        return t.to(like.dtype)

    def all_used(self):
        return self.next == len(self.draws)


# ---- layers -----------------------------------------------------------------

def same_padding(size, kernel, stride):
    """TensorFlow's SAME padding in one direction: (before, after)."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class Reshape(nn.Module):
    def __init__(self, *shape):
        super().__init__()
        self.shape = shape

    def forward(self, x):
        return x.reshape(x.shape[0], *self.shape)


class SameConv2d(nn.Module):
    """Conv2d with TensorFlow's SAME padding (asymmetric when odd)."""

    def __init__(self, c_in, c_out, kernel, stride):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(c_out, c_in, kernel, kernel))
        self.bias = nn.Parameter(torch.zeros(c_out))
        self.kernel, self.stride = kernel, stride

    def forward(self, x):
        top, bottom = same_padding(x.shape[2], self.kernel, self.stride)
        left, right = same_padding(x.shape[3], self.kernel, self.stride)
        x = F.pad(x, (left, right, top, bottom))
        return F.conv2d(x, self.weight, self.bias, stride=self.stride)


class SameConvTranspose2d(nn.Module):
    """The adjoint of SameConv2d from H*stride to H: a full transposed
    convolution, cropped by the SAME padding of the output size."""

    def __init__(self, c_in, c_out, kernel, stride):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(c_in, c_out, kernel, kernel))
        self.bias = nn.Parameter(torch.zeros(c_out))
        self.kernel, self.stride = kernel, stride

    def forward(self, x):
        h_out, w_out = x.shape[2] * self.stride, x.shape[3] * self.stride
        top, _ = same_padding(h_out, self.kernel, self.stride)
        left, _ = same_padding(w_out, self.kernel, self.stride)
        y = F.conv_transpose2d(x, self.weight, stride=self.stride)
        y = y[:, :, top:top + h_out, left:left + w_out]
        return y + self.bias.view(1, -1, 1, 1)


class GaussianHead(nn.Module):
    """mu and sigma = softplus(.) of a shared input."""

    def __init__(self, n_in, d):
        super().__init__()
        self.mu = nn.Linear(n_in, d)
        self.sigma = nn.Linear(n_in, d)

    def forward(self, h):
        return self.mu(h), F.softplus(self.sigma(h))


def mlp(d):
    encoder = nn.Sequential(nn.Linear(PIXELS, 500), nn.Softplus(), nn.Linear(500, 500), nn.Softplus(),
                            GaussianHead(500, d))
    decoder = nn.Sequential(nn.Linear(d, 500), nn.Softplus(), nn.Linear(500, 500), nn.Softplus(),
                            nn.Linear(500, PIXELS))
    return encoder, decoder


def conv(d):
    encoder = nn.Sequential(
        Reshape(1, 28, 28),
        SameConv2d(1, 16, 5, 2), nn.Softplus(),            # 28 -> 14
        SameConv2d(16, 32, 5, 2), nn.Softplus(),           # 14 -> 7
        SameConv2d(32, 32, 5, 2), nn.Softplus(),           # 7 -> 4
        nn.Flatten(), nn.Linear(32 * 4 * 4, 450), nn.Softplus(),
        GaussianHead(450, d))
    decoder = nn.Sequential(
        nn.Linear(d, 450), nn.Softplus(), nn.Linear(450, 32 * 4 * 4), nn.Softplus(),
        Reshape(32, 4, 4),
        nn.ConvTranspose2d(32, 32, 5, stride=2, padding=2), nn.Softplus(),   # 4 -> 7
        SameConvTranspose2d(32, 16, 5, 2), nn.Softplus(),                    # 7 -> 14
        SameConvTranspose2d(16, 1, 5, 2),                                    # 14 -> 28
        nn.Flatten())
    return encoder, decoder


# ---- densities --------------------------------------------------------------

def std_normal_log_prob(z):
    """sum_j log N(z_j; 0, 1) over the last dim."""
    return (-0.5 * z * z - HALF_LOG_2PI).sum(-1)


# ---- flows (SPEC section 3) ---------------------------------------------------

class Flow(nn.Module):
    """What every integrator shares: its raw tensors, learned (parameters)
    or not (buffers), named as lvae names them."""

    def __init__(self, desc, tensors):
        super().__init__()
        self.kind, self.K, self.d = desc["kind"], desc["K"], desc["dim"]
        self.max_step = desc.get("max_step")
        self.noise = desc.get("noise", False)
        self.has_momentum = desc["has_momentum"]
        learned = desc.get("learned", {})
        for name, value in tensors.items():
            if learned.get(name):
                setattr(self, name, nn.Parameter(value.clone()))
            else:
                self.register_buffer(name, value.clone())

    def h(self):
        return self.max_step * torch.sigmoid(self.step_logit)

    def gamma(self):
        return F.softplus(self.friction)

    def temperature0(self):
        return torch.ones((), dtype=self.step_logit.dtype)


def force(U, z, counter):
    """U(z) [N] and g = grad U(z) [N, d], on the tape."""
    counter[0] += 1
    u = U(z)
    g, = torch.autograd.grad(u.sum(), z, create_graph=True)
    return u, g


class Leapfrog(Flow):
    """SPEC 3.1, the force cached: K + 1 evaluations."""

    def __init__(self, desc, tensors):
        super().__init__(desc, tensors)
        self.tempering = desc["tempering"]

    def temperature0(self):
        if self.tempering == "fixed":
            return 1 + torch.exp(self.temper)
        if self.tempering == "free":
            return torch.exp(-2 * F.logsigmoid(self.temper).sum())
        return super().temperature0()

    def alpha(self, k):
        if self.tempering == "free":
            return torch.sigmoid(self.temper[k - 1])
        T0, K = 1 + torch.exp(self.temper), self.K
        T_k = (1 - T0) * (k * k / (K * K)) + T0
        T_prev = (1 - T0) * ((k - 1) * (k - 1) / (K * K)) + T0
        return torch.sqrt(T_k / T_prev)

    def forward(self, z, rho, U, noise, counter):
        h = self.h()
        logdet = torch.zeros(z.shape[0], dtype=z.dtype)
        u, g = force(U, z, counter)
        for k in range(1, self.K + 1):
            rho_half = rho - 0.5 * h * g
            z = z + h * rho_half
            u, g = force(U, z, counter)
            rho = rho_half - 0.5 * h * g
            if self.tempering != "none":
                alpha = self.alpha(k)
                rho = alpha * rho
                logdet = logdet + self.d * torch.log(alpha)
        return z, rho, logdet, u


class QSL(Flow):
    """SPEC 3.2: K evaluations."""

    def forward(self, z, rho, U, noise, counter):
        h, gamma = self.h(), self.gamma()
        gh = gamma * h
        decay, scale = torch.exp(-gh), torch.sqrt(-torch.expm1(-2 * gh))
        logdet = torch.zeros(z.shape[0], dtype=z.dtype)
        u = None
        for k in range(1, self.K + 1):
            z = z + h * rho
            u, g = force(U, z, counter)
            rho = decay * rho - h * g
            if self.noise:
                rho = rho + scale * noise.normal("xi_%d" % k, rho.shape, rho)
            logdet = logdet - gh.sum()
        return z, rho, logdet, u


class QSL2(Flow):
    """SPEC 3.3, the force cached: K + 1 evaluations."""

    def forward(self, z, rho, U, noise, counter):
        h, gamma = self.h(), self.gamma()
        gh = gamma * h
        decay, scale = torch.exp(-gh), torch.sqrt(-torch.expm1(-2 * gh))
        logdet = torch.zeros(z.shape[0], dtype=z.dtype)
        u, g = force(U, z, counter)
        for k in range(1, self.K + 1):
            r = rho - 0.5 * h * g
            z = z + 0.5 * h * r
            r = decay * r
            if self.noise:
                r = r + scale * noise.normal("xi_%d" % k, r.shape, r)
            z = z + 0.5 * h * r
            u, g = force(U, z, counter)
            rho = r - 0.5 * h * g
            logdet = logdet - gh.sum()
        return z, rho, logdet, u


class Euler(Flow):
    """SPEC 3.4, underdamped: K evaluations, each with the Hessian by d
    reverse passes through the force."""

    def forward(self, z, rho, U, noise, counter):
        h, gamma = self.h(), self.gamma()
        gh = gamma * h
        damp = 1 - gh
        hh = h.unsqueeze(1) * h.unsqueeze(0)
        logdet = torch.zeros(z.shape[0], dtype=z.dtype)
        for k in range(1, self.K + 1):
            _, g = force(U, z, counter)
            rows = [torch.autograd.grad(g[:, j].sum(), z, create_graph=True)[0] for j in range(self.d)]
            H = torch.stack(rows, 1)                       # [N, d, d]: H[n, j] = d g_j / dz
            M = torch.diag(damp) + hh * H
            logdet = logdet + torch.linalg.slogdet(M).logabsdet
            z_next = z + h * rho
            rho = damp * rho - h * g
            if self.noise:
                rho = rho + torch.sqrt(2 * gh) * noise.normal("xi_%d" % k, rho.shape, rho)
            z = z_next
        return z, rho, logdet, None


class Planar(Flow):
    """SPEC 3.5, global u, w, b per step."""

    def forward(self, z, rho, U, noise, counter):
        logdet = torch.zeros(z.shape[0], dtype=z.dtype)
        for k in range(self.K):
            u, w, b = self.planar_u[k], self.planar_w[k], self.planar_b[k]
            wu = (w * u).sum()
            u_hat = u + (F.softplus(wu) - 1 - wu) / (w * w).sum() * w
            act = torch.tanh(z @ w + b)
            z = z + act.unsqueeze(1) * u_hat
            psi = 1 - act * act
            logdet = logdet + torch.log(torch.abs(1 + psi * (u_hat * w).sum()))
        return z, None, logdet, None


FLOWS = {"leapfrog": Leapfrog, "qsl": QSL, "qsl2": QSL2, "euler": Euler, "planar": Planar}


# ---- the model (SPEC section 2) -----------------------------------------------

class FlowVAE(nn.Module):
    """Bernoulli decoder, Gaussian encoder, an optional flow."""

    def __init__(self, arch, d, flow=None, samples=1, iwae=False):
        super().__init__()
        self.encoder, self.decoder = (conv if arch == "conv" else mlp)(d)
        self.flow = flow
        self.samples, self.iwae = samples, iwae
        self.grad_evals = 0

    @staticmethod
    def from_manifest(manifest, flow_tensors=None):
        row = manifest["row"]
        desc = manifest.get("flow")
        flow = FLOWS[desc["kind"]](desc, flow_tensors) if desc else None
        return FlowVAE(row["arch"], row["d"], flow, row["samples"], row["model"] == "iwae")

    def log_likelihood(self, x, z, S):
        """log p(x|z) [S B] for z [S B, d], x [B, D] broadcast over S."""
        B = x.shape[0]
        logits = self.decoder(z).reshape(S, B, -1)
        return (x * logits - F.softplus(logits)).sum(-1).reshape(S * B)

    def log_weight(self, x, noise):
        """log w [S, B] (SPEC section 2), per-sample densities."""
        S, B = self.samples, x.shape[0]
        mu, sigma = self.encoder(x)
        d = mu.shape[1]
        eps = noise.normal("eps_z", (S, B, d), mu)
        z0 = (mu + sigma * eps).reshape(S * B, d)
        log_q0 = (-0.5 * eps * eps - torch.log(sigma) - HALF_LOG_2PI).sum(-1).reshape(S * B)
        if self.flow is None:
            self.grad_evals = 0
            return (self.log_likelihood(x, z0, S) + std_normal_log_prob(z0) - log_q0).reshape(S, B)

        def U(z):
            return -(self.log_likelihood(x, z, S) + std_normal_log_prob(z))

        rho0, log_r0 = None, 0
        if self.flow.has_momentum:
            T0 = self.flow.temperature0()
            rho0 = torch.sqrt(T0) * noise.normal("eps_rho", (S * B, d), mu)
            log_r0 = (-0.5 * rho0 * rho0 / T0).sum(-1) - 0.5 * d * torch.log(T0) - d * HALF_LOG_2PI
        counter = [0]
        zK, rhoK, logdet, U_end = self.flow(z0, rho0, U, noise, counter)
        self.grad_evals = counter[0]
        log_joint = -U_end if U_end is not None else self.log_likelihood(x, zK, S) + std_normal_log_prob(zK)
        if rhoK is not None:
            log_joint = log_joint + std_normal_log_prob(rhoK)
        return (log_joint + logdet - log_q0 - log_r0).reshape(S, B)

    def objective(self, x, noise):
        """[B]: the IWAE bound log mean_s w_s, or the ELBO mean_s log w_s."""
        lw = self.log_weight(x, noise)
        if self.iwae:
            return torch.logsumexp(lw, 0) - math.log(self.samples)
        return lw.mean(0)


def lvae_name(torch_name):
    """lvae's name of a parameter: Sequential positions count from 1."""
    parts = torch_name.split(".")
    return ".".join(str(int(p) + 1) if p.isdigit() else p for p in parts)


def named_parameters(model):
    """(lvae's name, parameter) for every parameter of the model."""
    return [(lvae_name(name), p) for name, p in model.named_parameters()]


# ---- the optimizer ------------------------------------------------------------

class SpecAdamax:
    """Adamax in SPEC section 6.2's form, eps outside the max:
    m = b1 m + (1 - b1) g, u = max(b2 u, |g|),
    theta -= lr / (1 - b1^t) * m / (u + eps).
    (torch.optim.Adamax puts eps inside the max.) Reads p.grad."""

    def __init__(self, params, lr=5e-4, betas=(0.9, 0.999), eps=1e-7):
        self.params = list(params)
        self.lr, self.betas, self.eps = lr, betas, eps
        self.m = [torch.zeros_like(p) for p in self.params]
        self.u = [torch.zeros_like(p) for p in self.params]
        self.t = 0

    @torch.no_grad()
    def step(self):
        b1, b2 = self.betas
        self.t += 1
        grads = [p.grad for p in self.params]
        torch._foreach_mul_(self.m, b1)
        torch._foreach_add_(self.m, grads, alpha=1 - b1)
        torch._foreach_mul_(self.u, b2)
        torch._foreach_maximum_(self.u, torch._foreach_abs(grads))
        denom = torch._foreach_add(self.u, self.eps)
        torch._foreach_addcdiv_(self.params, self.m, denom, value=-self.lr / (1 - b1 ** self.t))

    def zero_grad(self):
        for p in self.params:
            p.grad = None


def train_step(model, opt, x, noise):
    """One training step: the objective, loss.backward(), Adamax. Returns the
    loss (a 0-dim tensor)."""
    loss = -model.objective(x, noise).mean()
    loss.backward()
    opt.step()
    opt.zero_grad()
    return loss
