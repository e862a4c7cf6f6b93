"""The recurrent layers as cs231n's assignment 3 has students write them:
``rnn_step_forward(x, prev_h, Wx, Wh, b)``, ``rnn_forward(x, h0, Wx, Wh, b)``,
``lstm_step_forward(x, prev_h, prev_c, Wx, Wh, b)``, ``lstm_forward(x, h0, Wx,
Wh, b)``, each ``-> (outputs..., cache)``, and their backwards
``(douts..., cache) -> (dx, dh0 or dprev_h[, dprev_c], dWx, dWh, db)``.

The definitions are ``manual_bp.recurrent``'s forwards over ``jax.numpy``
(gates in cs231n's order i, f, o, g).  Drawn: one to three samples, inputs
and hidden units, one to four steps (a length-1 sequence included).

The rounding model, both sides (``u`` the user's unit plus the oracle's).
Forward, per step, with ``E`` the error bound carried in ``h`` (and ``c``)::

    a  = x Wx + h Wh + b     Ea = (D + H + 1) u (|x||Wx| + |h||Wh| + |b|) + Eh |Wh|
    h' = tanh(a)             Eh' = max |tanh(a ± Ea) - h'| + 4 u |h'| + u
    LSTM: Eσ = max |σ(a ± Ea) - σ| + 4 u σ + u,  Eg as Eh'
          Ec' = |c| Ef + f Ec + |g| Ei + i Eg + Ef Ec + Ei Eg + 2 u (|f c| + |i g|)
          Eh' = |tanh c'| Eo + o Etc + Eo Etc + u |h'|

A value goes through tanh or σ by its interval's ends, not a first-order
slope: ``a`` may be off by more than the scale on which a saturating tanh
bends (float32 sums of terms near 1e12 that cancel).  The ``+ u``: tanh
and σ are judged to ``u`` absolutely where their value is tiny, as correct
forms students write are: ``(e^a - e^-a) / (e^a + e^-a)`` is 0 for ``|a|``
below ``u``, ``(1 + tanh(a/2)) / 2`` off by up to ``u`` where ``σ`` is tiny.
Backward through time, each product ``p = q r`` gives
``|q| Er + |r| Eq + Eq Er + u |p|``, each ``k``-term sum ``k u`` of its
magnitudes, and a derivative read from a value that carries its forward
error moves as far as that interval lets it (``1 - h'^2`` over ``h' ± Eh'``):
where ``dh`` and ``1 - h'^2`` both nearly vanish, that error-times-error term
is all that is left.  The weights' gradients sum ``N T`` products.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from manual_bp import recurrent
from manual_bp.activations import sigmoid
from manual_bp_reference.jax_setup import jnp
from manual_bp_reference.layer_kinds.convolution import units
from manual_bp_reference.layer_kinds.kind import Array, Bug, LayerKind, register
from manual_bp_reference.layer_kinds.shaped import Drawn, Draws, Padded, Shapes, bucket, embedded
from manual_bp_reference.tolerance import SAFETY

MAX_STEPS = 4


def _through(f, a: Array, Ea: Array, value: Array, u: float) -> Array:
    """The error of ``f(a)`` (``f`` monotone: tanh, σ) when ``a`` is off by ``Ea``:
    the interval's ends, not a first-order slope (``a`` may be off by more
    than the curvature's scale, a saturating tanh's), plus ``f``'s own 4 ulps."""
    return np.maximum(np.abs(f(a + Ea) - value), np.abs(f(a - Ea) - value)) + 4 * u * np.abs(value)


def _slope_error(slope_of, value: Array, E: Array) -> Array:
    """How far ``slope_of(v)`` (``1 - v^2``, ``v (1 - v)``) may move when ``v`` is off by ``E``."""
    return np.maximum(np.abs(slope_of(value + E) - slope_of(value)),
                      np.abs(slope_of(value - E) - slope_of(value)))  # fmt: skip


def _tanh_slope(v: Array) -> Array:
    return 1 - v**2


def _sigmoid_slope(v: Array) -> Array:
    return v * (1 - v)


def _forward_pass(inputs: Mapping[str, Any], lstm: bool, u: float) -> list[dict[str, Array]]:
    """Every step's values and their error bounds (the module notes), float64."""
    x, Wx, Wh, b = (np.asarray(inputs[k]) for k in ("x", "Wx", "Wh", "b"))
    step = x.ndim == 2
    xs = x[:, None, :] if step else x
    h = np.asarray(inputs["prev_h" if step else "h0"])
    c = np.asarray(inputs["prev_c"]) if (lstm and step) else np.zeros_like(h)
    Eh, Ec = np.zeros_like(h), np.zeros_like(h)
    D, H = Wx.shape[0], h.shape[1]
    steps = []
    for t in range(xs.shape[1]):
        xt = xs[:, t]
        a = xt @ Wx + h @ Wh + b
        Ea = (D + H + 1) * u * (np.abs(xt) @ np.abs(Wx) + np.abs(h) @ np.abs(Wh) + np.abs(b))
        Ea = Ea + Eh @ np.abs(Wh)
        values = {"x": xt, "h": h, "Eh": Eh, "c": c, "Ec": Ec, "a": a, "Ea": Ea}
        if not lstm:
            h2 = np.tanh(a)
            Eh2 = _through(np.tanh, a, Ea, h2, u) + u
            values.update(h2=h2, Eh2=Eh2)
            h, Eh = h2, Eh2
        else:
            i, f, o = (sigmoid(a[:, k * H : (k + 1) * H]) for k in range(3))
            g = np.tanh(a[:, 3 * H :])
            E = [Ea[:, k * H : (k + 1) * H] for k in range(4)]
            Ei, Ef, Eo = (
                _through(sigmoid, a[:, k * H : (k + 1) * H], E[k], s, u) + u
                for k, s in enumerate((i, f, o))
            )
            Eg = _through(np.tanh, a[:, 3 * H :], E[3], g, u) + u
            c2 = f * c + i * g
            Ec2 = np.abs(c) * Ef + f * Ec + np.abs(g) * Ei + i * Eg + Ef * Ec + Ei * Eg
            Ec2 = Ec2 + 2 * u * (np.abs(f * c) + np.abs(i * g))
            tc = np.tanh(c2)
            Etc = _through(np.tanh, c2, Ec2, tc, u) + u
            h2 = o * tc
            Eh2 = np.abs(tc) * Eo + o * Etc + Eo * Etc + u * np.abs(h2)
            values.update(i=i, f=f, o=o, g=g, Ei=Ei, Ef=Ef, Eo=Eo, Eg=Eg,
                          c2=c2, Ec2=Ec2, tc=tc, Etc=Etc, h2=h2, Eh2=Eh2)  # fmt: skip
            h, Eh, c, Ec = h2, Eh2, c2, Ec2
        steps.append(values)
    return steps


def _product(q: Array, Eq: Array, r: Array, Er: Array, u: float) -> tuple[Array, Array]:
    p = q * r
    return p, np.abs(q) * Er + np.abs(r) * Eq + Eq * Er + u * np.abs(p)


def _tolerance(lstm: bool):
    def tolerance(inputs: Mapping[str, Any], dout: Any, dtype: str) -> dict[str, Array]:
        u, tiny = units(dtype)
        steps = _forward_pass(inputs, lstm, u)
        Wx, Wh = np.abs(inputs["Wx"]), np.abs(inputs["Wh"])
        step = np.asarray(inputs["x"]).ndim == 2
        douts = dout if isinstance(dout, tuple) else (dout,)
        dh = douts[0][:, None, :] if step else douts[0]
        N, T = dh.shape[0], dh.shape[1]
        carry_h = np.zeros_like(steps[0]["h"])
        E_carry_h = np.zeros_like(carry_h)
        carry_c = douts[1] if (lstm and step) else np.zeros_like(carry_h)
        E_carry_c = np.zeros_like(carry_h)
        dx: list[Array] = []
        M = {"Wx": 0.0, "Wh": 0.0, "b": 0.0}
        E = {"Wx": 0.0, "Wh": 0.0, "b": 0.0}
        for t in reversed(range(T)):
            s = steps[t]
            G = dh[:, t] + carry_h
            EG = E_carry_h + u * np.abs(G)
            if not lstm:
                d1 = 1 - s["h2"] ** 2
                E1 = _slope_error(_tanh_slope, s["h2"], s["Eh2"])
                dz = G * d1
                Edz = EG * d1 + np.abs(G) * E1 + EG * E1 + 2 * u * np.abs(dz)
            else:
                do, Edo = _product(G, EG, s["tc"], s["Etc"], u)
                dtc, Edtc = _product(G, EG, s["o"], s["Eo"], u)
                d1 = 1 - s["tc"] ** 2
                E1 = _slope_error(_tanh_slope, s["tc"], s["Etc"])
                dc = carry_c + dtc * d1
                Edc = (E_carry_c + Edtc * d1 + np.abs(dtc) * E1 + Edtc * E1
                       + 3 * u * (np.abs(carry_c) + np.abs(dtc) * d1))  # fmt: skip
                di, Edi = _product(dc, Edc, s["g"], s["Eg"], u)
                df, Edf = _product(dc, Edc, s["c"], s["Ec"], u)
                dg, Edg = _product(dc, Edc, s["i"], s["Ei"], u)
                carry_c, E_carry_c = _product(dc, Edc, s["f"], s["Ef"], u)
                parts, Eparts = [], []
                gates = ((di, Edi, s["i"], s["Ei"]), (df, Edf, s["f"], s["Ef"]),
                         (do, Edo, s["o"], s["Eo"]))  # fmt: skip
                for dgate, Egate, gate, Eg_ in gates:
                    slope = gate * (1 - gate)
                    Eslope = _slope_error(_sigmoid_slope, gate, Eg_)
                    parts.append(dgate * slope)
                    Eparts.append(Egate * slope + np.abs(dgate) * Eslope + Egate * Eslope
                                  + 3 * u * np.abs(dgate * slope))  # fmt: skip
                slope = 1 - s["g"] ** 2
                Eslope = _slope_error(_tanh_slope, s["g"], s["Eg"])
                parts.append(dg * slope)
                Eparts.append(Edg * slope + np.abs(dg) * Eslope + Edg * Eslope
                              + 2 * u * np.abs(dg * slope))  # fmt: skip
                dz, Edz = np.concatenate(parts, axis=1), np.concatenate(Eparts, axis=1)
            k = dz.shape[1]
            adz = np.abs(dz)
            dx.append((k + 1) * u * adz @ Wx.T + Edz @ Wx.T)
            carry_h = dz @ np.asarray(inputs["Wh"]).T
            E_carry_h = (k + 1) * u * adz @ Wh.T + Edz @ Wh.T
            M["Wx"] = M["Wx"] + np.abs(s["x"]).T @ adz
            E["Wx"] = E["Wx"] + np.abs(s["x"]).T @ Edz
            M["Wh"] = M["Wh"] + np.abs(s["h"]).T @ adz
            E["Wh"] = E["Wh"] + np.abs(s["h"]).T @ Edz + s["Eh"].T @ (adz + Edz)
            M["b"] = M["b"] + adz.sum(axis=0)
            E["b"] = E["b"] + Edz.sum(axis=0)
        terms = N * T + 1
        grads = {f"d{k}": SAFETY * (E[k] + terms * u * M[k] + (terms + 1) * tiny) for k in M}
        Edx_all = np.stack(dx[::-1], axis=1)
        Eh_all = np.stack([s["Eh2"] for s in steps], axis=1)
        first = "dprev_h" if step else "dh0"
        result = {
            "dx": SAFETY * ((Edx_all[:, 0] if step else Edx_all) + 4 * tiny),
            first: SAFETY * (E_carry_h + 4 * tiny),
            **grads,
        }
        if step:
            result["next_h"] = SAFETY * (Eh_all[:, 0] + 4 * tiny)
        else:
            result["h"] = SAFETY * (Eh_all + 4 * tiny)
        if lstm and step:
            result["next_c"] = SAFETY * (steps[0]["Ec2"] + 4 * tiny)
            result["dprev_c"] = SAFETY * (E_carry_c + 4 * tiny)
        return result

    return tolerance


def _draw(step: bool, lstm: bool):
    def draw(d: Draws) -> Drawn:
        N = d.integer(1, min(3, d.max_batch), probe=2)
        D = d.integer(1, min(3, d.max_width), probe=3)
        H = d.integer(1, min(3, d.max_width), probe=2)
        T = 1 if step else d.integer(1, MAX_STEPS, probe=3)
        gates = 4 * H if lstm else H
        x = d.values((N, D) if step else (N, T, D))
        arrays = {"x": x, ("prev_h" if step else "h0"): d.values((N, H))}
        if lstm and step:
            arrays["prev_c"] = d.values((N, H))
        arrays.update(Wx=d.values((D, gates)), Wh=d.values((H, gates)), b=d.values((gates,)))
        if step:
            douts = (d.values((N, H)), d.values((N, H))) if lstm else (d.values((N, H)),)
        else:
            douts = (d.values((N, T, H)),)
        return Drawn(arrays, {}, douts)

    return draw


def _padded(gates: int):
    """Samples, steps, inputs and hidden units padded with zeros (``Shapes.padded``).

    Exact: a padded hidden unit has zero weights in and out, so its ``a`` is 0
    and its ``h`` stays 0 (tanh(0); an LSTM's ``o tanh(c)`` with ``c = i g = 0``);
    padded steps come after the real ones, whose values they cannot change, and
    with ``dh = 0`` there nothing flows back from them.  Each gate's block of
    ``Wx``, ``Wh``, ``b`` is padded on its own.
    """

    def gate_blocks(value: Array, rows: int | None, hidden: int) -> Array:
        blocks = np.asarray(value).reshape(*np.shape(value)[:-1], gates, -1)
        shape = (*((rows,) if rows is not None else ()), gates, hidden)
        return embedded(blocks, shape).reshape(*shape[:-2], gates * hidden)

    def crop_blocks(value: Array, rows: int | None, hidden: int) -> Array:
        blocks = value.reshape(*value.shape[:-1], gates, -1)[..., :hidden]
        blocks = blocks[:rows] if rows is not None else blocks
        return blocks.reshape(*blocks.shape[:-2], gates * hidden)

    def padded(inputs: Mapping[str, Any], douts: tuple[Array, ...]) -> Padded:
        x = np.asarray(inputs["x"])
        D, H = x.shape[-1], np.shape(inputs["Wh"])[0]
        Db, Hb = bucket(D), bucket(H)
        big = tuple(bucket(n) for n in x.shape[:-1])
        out = {k: embedded(v, (*big[:1], Hb)) for k, v in inputs.items()
               if k in ("h0", "prev_h", "prev_c")}  # fmt: skip
        out.update(
            x=embedded(x, (*big, Db)), Wx=gate_blocks(inputs["Wx"], Db, Hb),
            Wh=gate_blocks(inputs["Wh"], Hb, Hb), b=gate_blocks(inputs["b"], None, Hb),
        )  # fmt: skip
        padded_douts = tuple(embedded(d, (*big[: d.ndim - 1], Hb)) for d in douts)

        def crop(result: dict[str, Array]) -> dict[str, Array]:
            cropped = {}
            for key, value in result.items():
                if key in ("dWx", "dWh", "db"):
                    rows = {"dWx": D, "dWh": H, "db": None}[key]
                    cropped[key] = crop_blocks(value, rows, H)
                else:
                    like = inputs[key[1:]] if key.startswith("d") else douts[0]
                    cropped[key] = value[tuple(slice(0, n) for n in np.shape(like))]
            return cropped

        return Padded(out, padded_douts, crop)

    return padded


def _bptt(
    inputs: Mapping[str, Any],
    douts: tuple[Array, ...],
    lstm: bool,
    *,
    carry: bool = True,
    accumulate: bool = True,
    order: str = "ifog",
    carry_c: bool = True,
    square: bool = True,
) -> dict[str, Array]:
    """The outputs of a recurrent layer written with one classic bug (a formula
    for the catalogue): ``carry=False`` drops the gradient from step t + 1,
    ``accumulate=False`` overwrites ``dWx``, ``dWh`` at each step, ``order``
    the gate blocks' order, ``carry_c=False`` passes back ``f dc`` from
    ``dnext_h`` only, ``square=False`` takes tanh' as ``1 - tanh``.
    """
    x, Wx, Wh, b = (np.asarray(inputs[k], dtype=np.float64) for k in ("x", "Wx", "Wh", "b"))
    step = x.ndim == 2
    xs = x[:, None] if step else x
    h = np.asarray(inputs["prev_h" if step else "h0"], dtype=np.float64)
    c = np.asarray(inputs["prev_c"], dtype=np.float64) if (lstm and step) else np.zeros_like(h)
    H, T = h.shape[1], xs.shape[1]
    slope = (lambda t: 1 - t**2) if square else (lambda t: 1 - t)
    blocks = [order.index(gate) for gate in "ifog"]  # where each gate's block sits
    states: list[tuple[Array, ...]] = []
    hs: list[Array] = []
    cs: list[Array] = []
    for t in range(T):
        a = xs[:, t] @ Wx + h @ Wh + b
        if not lstm:
            h2 = np.tanh(a)
            states.append((xs[:, t], h, h2))
            h = h2
        else:
            i, f, o = (sigmoid(a[:, k * H : (k + 1) * H]) for k in blocks[:3])
            g = np.tanh(a[:, blocks[3] * H : (blocks[3] + 1) * H])
            c2 = f * c + i * g
            h2 = o * np.tanh(c2)
            states.append((xs[:, t], h, c, i, f, o, g, c2))
            h, c = h2, c2
            cs.append(c2)
        hs.append(h)
    dh = douts[0][:, None] if step else douts[0]
    dnext_c = douts[1] if (lstm and step) else np.zeros_like(h)
    dcarry = np.zeros_like(h)
    dx = np.zeros_like(xs)
    grads = {"Wx": np.zeros_like(Wx), "Wh": np.zeros_like(Wh), "b": np.zeros_like(b)}
    for t in reversed(range(T)):
        G = dh[:, t] + (dcarry if carry else 0)
        if not lstm:
            xt, hp, h2 = states[t]
            da = G * slope(h2)
        else:
            xt, hp, cp, i, f, o, g, c2 = states[t]
            tc = np.tanh(c2)
            dc_h = G * o * slope(tc)
            dc = dnext_c + dc_h
            parts = {"i": dc * g * i * (1 - i), "f": dc * cp * f * (1 - f),
                     "o": G * tc * o * (1 - o), "g": dc * i * slope(g)}  # fmt: skip
            da = np.concatenate([parts[gate] for gate in order], axis=1)
            dnext_c = f * (dc if carry_c else dc_h)
        dx[:, t] = da @ Wx.T
        dcarry = da @ Wh.T
        for key, value in (("Wx", xt.T @ da), ("Wh", hp.T @ da)):
            grads[key] = grads[key] + value if accumulate else value
        grads["b"] = grads["b"] + da.sum(axis=0)
    h_all = np.stack(hs, axis=1)
    first = "prev_h" if step else "h0"
    result = {"dx": dx[:, 0] if step else dx, f"d{first}": dcarry,
              **{f"d{k}": v for k, v in grads.items()}}  # fmt: skip
    if step:
        result["next_h"] = h_all[:, 0]
        if lstm:
            result["next_c"], result["dprev_c"] = cs[0], dnext_c
    else:
        result["h"] = h_all
    return result


def _bugs(step: bool, lstm: bool) -> tuple[Bug, ...]:
    """The classic bugs of one recurrent layer, each a ``_bptt`` variant."""

    def bug(name: str, description: str, **variant: Any) -> Bug:
        def outputs(inputs: Mapping[str, Any], dout: Any) -> dict[str, Array]:
            douts = dout if isinstance(dout, tuple) else (dout,)
            return _bptt(inputs, douts, lstm, **variant)

        return Bug(name, description, outputs)

    found = [bug("tanh' as 1 - tanh", "takes tanh'(z) as 1 - tanh(z) instead of "
                 "1 - tanh(z)**2" + (" (for tanh(next_c) and for g)" if lstm else ""),
                 square=False)]  # fmt: skip
    if not step:
        found += [
            bug("dh from the next step not added", "feeds each step only dh[:, t]: in "
                "backprop through time the upstream gradient of h_t is dh[:, t] PLUS the "
                "dprev_h flowing back from step t + 1", carry=False),
            bug("weight gradients overwritten", "sets dWx, dWh to each step's gradient "
                "instead of adding them up over the steps (every step uses the same weights)",
                accumulate=False),
        ]  # fmt: skip
    if lstm:
        found += [
            bug("gate order swapped", "splits the gates as i, f, g, o (g from the third "
                "block): cs231n's order is i, f, o, g", order="ifgo"),
            bug("the cell-state gradient not carried", "passes back dprev_c = f * (the "
                "cell gradient from dnext_h) only, dropping dnext_c", carry_c=False),
        ]  # fmt: skip
    return tuple(found)


RNN_STEP_BUGS = _bugs(True, False)
RNN_BUGS = _bugs(False, False)
LSTM_STEP_BUGS = _bugs(True, True)
LSTM_BUGS = _bugs(False, True)


def _kind(name: str, step: bool, lstm: bool, bugs: tuple[Bug, ...]) -> LayerKind:
    h = "prev_h" if step else "h0"
    inputs = ("x", h, "prev_c", "Wx", "Wh", "b") if (lstm and step) else ("x", h, "Wx", "Wh", "b")
    outputs = ("next_h", "next_c") if (lstm and step) else ("next_h",) if step else ("h",)
    forward = getattr(recurrent, f"{name}_forward")

    def definition(*arrays: Any) -> Any:
        result = forward(*arrays, xp=jnp)
        return result[:-1] if len(outputs) > 1 else result[0]

    return LayerKind(
        name, "recurrent", inputs, tuple(f"d{k}" for k in inputs),
        definition=definition,
        tolerance=_tolerance(lstm),
        shapes=Shapes(
            call=inputs, draw=_draw(step, lstm), outputs=outputs, padded=_padded(4 if lstm else 1)
        ),
        bugs=bugs,
    )  # fmt: skip


RNN_STEP = register(_kind("rnn_step", True, False, RNN_STEP_BUGS))
RNN = register(_kind("rnn", False, False, RNN_BUGS))
LSTM_STEP = register(_kind("lstm_step", True, True, LSTM_STEP_BUGS))
LSTM = register(_kind("lstm", False, True, LSTM_BUGS))
