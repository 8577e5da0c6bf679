"""bench/peers/torch_worker.py -- the PyTorch worker of bench/peer.lua.

    python3 bench/peers/torch_worker.py check DIR...
    python3 bench/peers/torch_worker.py checker COMMAND_FIFO
    python3 bench/peers/torch_worker.py serve DIR COMMAND_FIFO

DIR holds what lvae's worker wrote for one row (manifest.json, the
parameters, the batch x, lvae's noise draws; bench/peers/lvae_worker.lua).

`check` rebuilds the row's model from lvae's weights and takes two
training steps with lvae's noise (`checker` does the same on command,
"check DIR" answered by {"done": true}, so that bench/peer.lua can start
it, and let it import torch, while lvae's worker writes DIR): the objective [B], the gradient of the
loss with respect to every parameter, and the parameters after each
Adamax step go to DIR/torch/*.npy, the force evaluations and timings to
DIR/torch/result.json, for bench/peer.lua to compare with lvae's.

`serve` times training steps (fresh noise from torch.randn) on command:
it reads one command a line from COMMAND_FIFO and answers on stdout with
one line "@peer {json}":

    warmup SECONDS      steps for at least SECONDS (at least one)
    round N THREADS S   torch.set_num_threads(THREADS), S untimed steps,
                        then N timed ones: {"seconds": total}
    flops               one step under torch.profiler: the GEMM flops
    stats               peak and current resident memory
    quit

Its first line is "@peer {ready...}" with the versions, thread counts,
OpenBLAS's kernel and the resident memory just after `import torch`. The
OpenBLAS thread count is the environment's (OPENBLAS_NUM_THREADS, read
when the library loads), so bench/peer.lua starts one worker per value.
"""

import ctypes
import json
import os
import sys
import time


def memory_kib():
    """VmHWM and VmRSS of this process, in KiB (/proc/self/status)."""
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmHWM", "VmRSS"):
                out[key] = int(value.split()[0])
    return out


RSS_BEFORE_IMPORT = memory_kib()["VmRSS"]
try:
    import numpy as np
    import torch
except ImportError as e:      # bench/peer.lua checks first; this is the backstop
    sys.stderr.write("torch_worker.py: %s (scripts/setup.sh bench installs python3-torch and python3-numpy)\n" % e)
    sys.exit(3)
RSS_AFTER_IMPORT = memory_kib()["VmRSS"]

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_models as tm  # noqa: E402


def openblas_library():
    """The OpenBLAS library this process mapped, from /proc/self/maps."""
    with open("/proc/self/maps") as f:
        for line in f:
            path = line.split()[-1]
            if "libopenblas" in os.path.basename(path):
                return os.path.realpath(path)
    return None


def openblas_info():
    """The OpenBLAS torch runs on: kernel, configuration, threads."""
    try:
        lib = ctypes.CDLL("libopenblas.so.0")
        lib.openblas_get_corename.restype = ctypes.c_char_p
        lib.openblas_get_config.restype = ctypes.c_char_p
        return {"corename": lib.openblas_get_corename().decode(),
                "config": lib.openblas_get_config().decode(),
                "threads": lib.openblas_get_num_threads(), "library": openblas_library()}
    except (OSError, AttributeError) as e:
        return {"error": str(e)}


def load_npy(folder, name, dtype):
    return torch.from_numpy(np.load(os.path.join(folder, name))).to(dtype)


def load_row(folder):
    """The model of DIR's manifest with lvae's weights, the batch, the
    parameters in lvae's order, and lvae's noise draws."""
    with open(os.path.join(folder, "manifest.json")) as f:
        manifest = json.load(f)
    dtype = {"f32": torch.float32, "f64": torch.float64}[manifest["dtype"]]
    torch.set_default_dtype(dtype)
    flow_tensors = {name: load_npy(folder, file, dtype) for name, file in manifest.get("flow_tensors", {}).items()}
    model = tm.FlowVAE.from_manifest(manifest, flow_tensors)
    mine = dict(tm.named_parameters(model))
    params = []
    with torch.no_grad():
        for entry in manifest["params"]:
            name = entry["name"]
            p = mine.pop(name, None)
            if p is None:
                raise SystemExit("torch_worker.py: lvae's parameter %s has no counterpart here" % name)
            value = load_npy(folder, entry["file"], dtype)
            if tuple(value.shape) != tuple(p.shape):
                raise SystemExit("torch_worker.py: %s is %s in lvae, %s here"
                                 % (name, tuple(value.shape), tuple(p.shape)))
            p.copy_(value)
            params.append(p)
    if mine:
        raise SystemExit("torch_worker.py: parameters lvae does not have: %s" % ", ".join(sorted(mine)))
    x = load_npy(folder, manifest["x"], dtype)
    noise = [(n["name"], load_npy(folder, n["file"], dtype)) for n in manifest["noise"]]
    return manifest, model, params, x, noise


def save(folder, name, t):
    np.save(os.path.join(folder, name), t.detach().numpy())


def cmd_check(folder):
    manifest, model, params, x, noise = load_row(folder)
    out = os.path.join(folder, "torch")
    os.makedirs(out, exist_ok=True)
    opt = tm.SpecAdamax(params, lr=manifest["lr"], betas=tuple(manifest["betas"]), eps=manifest["eps"])
    result = {}
    for step in (1, 2):
        given = tm.GivenNoise(noise)
        t0 = time.perf_counter()
        objective = model.objective(x, given)
        if not given.all_used():
            raise SystemExit("torch_worker.py: the model used %d of lvae's %d noise draws"
                             % (given.next, len(noise)))
        loss = -objective.mean()
        loss.backward()
        for i, p in enumerate(params):
            save(out, "grad%d_%03d.npy" % (step, i + 1), p.grad)
        opt.step()
        opt.zero_grad()
        result["step%d_seconds" % step] = time.perf_counter() - t0
        save(out, "objective%d.npy" % step, objective)
        for i, p in enumerate(params):
            save(out, "param%d_%03d.npy" % (step, i + 1), p)
        result["grad_evals"] = model.grad_evals
    with open(os.path.join(out, "result.json"), "w") as f:
        json.dump(result, f)


def gemm_flops(model, opt, x):
    """The flops of the GEMMs (mm, addmm, bmm) of one step, as torch's
    profiler counts them."""
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU], with_flops=True) as prof:
        tm.train_step(model, opt, x, tm.FreshNoise())
    total = 0
    for e in prof.key_averages():
        if e.key in ("aten::mm", "aten::addmm", "aten::bmm") and e.flops:
            total += e.flops
    return total


def reply(**fields):
    sys.stdout.write("@peer " + json.dumps(fields) + "\n")
    sys.stdout.flush()


def cmd_serve(folder, fifo):
    manifest, model, params, x, _ = load_row(folder)
    opt = tm.SpecAdamax(params, lr=manifest["lr"], betas=tuple(manifest["betas"]), eps=manifest["eps"])
    noise = tm.FreshNoise()
    default_threads = torch.get_num_threads()
    reply(ready=True, pid=os.getpid(), torch=torch.__version__, numpy=np.__version__,
          python=sys.version.split()[0], default_threads=default_threads,
          openblas=openblas_info(), openblas_num_threads_env=os.environ.get("OPENBLAS_NUM_THREADS"),
          rss_before_import_kib=RSS_BEFORE_IMPORT, rss_after_import_kib=RSS_AFTER_IMPORT)

    def step():
        tm.train_step(model, opt, x, noise)

    with open(fifo) as commands:
        for line in commands:
            words = line.split()
            if not words:
                continue
            if words[0] == "warmup":
                seconds, steps, t0 = float(words[1]), 0, time.perf_counter()
                while steps < 1 or time.perf_counter() - t0 < seconds:
                    step()
                    steps += 1
                reply(steps=steps, seconds=time.perf_counter() - t0)
            elif words[0] == "round":
                n, threads, settle = int(words[1]), int(words[2]), int(words[3])
                if threads != torch.get_num_threads():
                    torch.set_num_threads(threads)
                for _ in range(settle):
                    step()
                t0 = time.perf_counter()
                for _ in range(n):
                    step()
                reply(seconds=time.perf_counter() - t0, steps=n, threads=torch.get_num_threads())
            elif words[0] == "flops":
                reply(gemm_flops=gemm_flops(model, opt, x), grad_evals=model.grad_evals)
            elif words[0] == "stats":
                mem = memory_kib()
                reply(vmhwm_kib=mem["VmHWM"], vmrss_kib=mem["VmRSS"], grad_evals=model.grad_evals)
            elif words[0] == "quit":
                reply(bye=True)
                return
            else:
                raise SystemExit("torch_worker.py: unknown command %r" % line.strip())


def cmd_checker(fifo):
    reply(ready=True, pid=os.getpid())
    with open(fifo) as commands:
        for line in commands:
            words = line.split()
            if len(words) == 2 and words[0] == "check":
                cmd_check(words[1])
                reply(done=True)
            elif words == ["quit"]:
                reply(bye=True)
                return
            elif words:
                raise SystemExit("torch_worker.py: unknown command %r" % line.strip())


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "check":
        for folder in sys.argv[2:]:
            cmd_check(folder)
    elif len(sys.argv) == 3 and sys.argv[1] == "checker":
        cmd_checker(sys.argv[2])
    elif len(sys.argv) == 4 and sys.argv[1] == "serve":
        cmd_serve(sys.argv[2], sys.argv[3])
    else:
        sys.stderr.write("usage: torch_worker.py check DIR... | checker COMMAND_FIFO | serve DIR COMMAND_FIFO\n")
        sys.exit(2)
