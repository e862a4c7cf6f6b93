"""Time to verdict: how long a user waits for a check, beside the jax floor.

Each figure is the wall time of a fresh process, as a user starts it:

* **floor**: ``python -c`` that imports jax, enables x64 and compiles and runs
  one tiny ``jax.jit(jax.grad(...))``: what any jax-checked verdict costs at
  least;
* **check**: ``manual-bp check my_net.py:backprop --layers 2,3,1
  --activations tanh,sigmoid``, the README's example, on a correct backprop
  in the course's style (100 examples, the default);
* **check_layer**: ``manual-bp check layers.py:batchnorm_backward --layer
  batchnorm --forward layers.py:batchnorm_forward``, cs231n's batch-norm pair
  (the default examples);
* **check_optimizer**: a script calling ``check_optimizer("optim.py:adam",
  Adam(1e-3), style="cs231n")``, cs231n's Adam (the default examples).

Each check runs **cold** (an empty compilation cache:
``MANUAL_BP_COMPILE_CACHE`` a new folder) and then **warm** (the same folder,
filled by the cold run), interleaved with the floor in every round, so the
ratios come from the same minutes of the same machine.  The table gives the
median of the rounds and its ratio to the floor's median, and the compiles
the CLI's JSON reports.

    python -m benchmarks.time_to_verdict --rounds 5
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from benchmarks.environment import print_environment

FLOOR = """\
import jax
jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp
f = jax.jit(jax.grad(lambda w, x: jnp.sum(jnp.tanh(w @ x))))
f(jnp.ones((3, 2)), jnp.ones((2, 4))).block_until_ready()
"""

MY_NET = """\
import numpy as np


def backprop(params, X, Y):
    W1, B1, W2, B2 = params["W1"], params["B1"], params["W2"], params["B2"]
    m = X.shape[1]
    A1 = np.tanh(W1 @ X + B1)
    A2 = 1 / (1 + np.exp(-(W2 @ A1 + B2)))
    dZ2 = (A2 - Y) / m
    dZ1 = (W2.T @ dZ2) * (1 - A1**2)
    return {
        "W1": dZ1 @ X.T, "B1": dZ1.sum(axis=1, keepdims=True),
        "W2": dZ2 @ A1.T, "B2": dZ2.sum(axis=1, keepdims=True),
    }
"""

LAYERS = """\
import numpy as np


def batchnorm_forward(x, gamma, beta, bn_param):
    mu = x.mean(axis=0)
    xmu = x - mu
    std = np.sqrt((xmu ** 2).mean(axis=0) + bn_param["eps"])
    xhat = xmu / std
    return gamma * xhat + beta, (xhat, xmu, std, gamma)


def batchnorm_backward(dout, cache):
    xhat, xmu, std, gamma = cache
    N = dout.shape[0]
    dxhat = dout * gamma
    dvar = (dxhat * xmu).sum(axis=0) * -0.5 * std ** -3
    dmu = -dxhat.sum(axis=0) / std
    dx = dxhat / std + dvar * 2 * xmu / N + dmu / N
    return dx, (dout * xhat).sum(axis=0), dout.sum(axis=0)
"""

OPTIMIZER = """\
import json, sys
from manual_bp.optimizers import Adam
from manual_bp_reference.optimizer_check import check_optimizer
report = check_optimizer("optim.py:adam", Adam(1e-3), style="cs231n")
try:
    from manual_bp_reference.jax_setup import compiles
except ImportError:  # a version before the count (benchmarking an older commit)
    print(json.dumps({"verdict": "pass"}))
else:
    print(json.dumps({"verdict": "pass", "compiles": compiles().as_dict()}))
"""


def _files(folder: Path) -> None:
    (folder / "my_net.py").write_text(MY_NET)
    (folder / "layers.py").write_text(LAYERS)
    source = Path(__file__).with_name("cs231n_optim.py").read_text()
    (folder / "optim.py").write_text(source)


def _commands(manual_bp: str) -> dict[str, list[str]]:
    python = sys.executable
    return {
        "floor": [python, "-c", FLOOR],
        "check": [
            manual_bp, "check", "my_net.py:backprop", "--layers", "2,3,1",
            "--activations", "tanh,sigmoid", "--json",
        ],
        "check_layer": [
            manual_bp, "check", "layers.py:batchnorm_backward", "--layer", "batchnorm",
            "--forward", "layers.py:batchnorm_forward", "--json",
        ],
        "check_optimizer": [python, "-c", OPTIMIZER],
    }  # fmt: skip


def _timed(command: list[str], folder: Path, cache: Path | None) -> tuple[float, dict]:
    """Wall seconds of ``command`` run in ``folder``; its JSON's ``compiles``."""
    env = dict(os.environ)
    if cache is not None:
        env["MANUAL_BP_COMPILE_CACHE"] = str(cache)
    start = time.perf_counter()
    result = subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(f"{command[:3]} exited {result.returncode}:\n{result.stderr[-2000:]}")
    compiles = {}
    if result.stdout.strip().startswith("{"):
        compiles = json.loads(result.stdout).get("compiles", {})
    return wall, compiles


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (median)")
    args = parser.parse_args()
    print_environment("time to verdict")
    manual_bp = str(Path(sys.executable).with_name("manual-bp"))
    walls: dict[str, list[float]] = {}
    compiles: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        _files(folder)
        commands = _commands(manual_bp)
        for round_ in range(args.rounds):
            for name, command in commands.items():
                if name == "floor":
                    walls.setdefault("floor", []).append(_timed(command, folder, None)[0])
                    continue
                cache = folder / f"cache-{name}-{round_}"
                for state in ("cold", "warm"):
                    wall, counted = _timed(command, folder, cache)
                    walls.setdefault(f"{name} {state}", []).append(wall)
                    compiles[f"{name} {state}"] = counted
    floor = statistics.median(walls["floor"])
    print(f"\n{args.rounds} rounds, median wall seconds; ratio = median / the floor's median")
    print(f"{'':<22} {'median':>7} {'min':>6} {'max':>6} {'ratio':>6}  compiles")
    for name, values in walls.items():
        median = statistics.median(values)
        counted = compiles.get(name, {})
        detail = (
            f"{counted.get('compiled', '-')} compiled, {counted.get('from_cache', '-')} from cache"
            if counted
            else ""
        )
        print(
            f"{name:<22} {median:7.2f} {min(values):6.2f} {max(values):6.2f} "
            f"{median / floor:6.2f}  {detail}"
        )
    print(
        textwrap.dedent("""
        cold: an empty compilation cache; warm: the same check again, the cache filled.""")
    )


if __name__ == "__main__":
    main()
