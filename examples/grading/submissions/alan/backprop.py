import numpy as np


def backprop(weights, biases, x, y):
    """One sample, as network.py does it: (nabla_b, nabla_w)."""
    activation, activations, zs = x, [x], []
    for i, (b, w) in enumerate(zip(biases, weights)):
        z = np.dot(w, activation) + b
        zs.append(z)
        if i < len(weights) - 1:
            activation = np.maximum(0, z)
        else:
            e = np.exp(z - np.max(z))
            activation = e / np.sum(e)
        activations.append(activation)
    delta = activations[-1] - y
    nabla_b = [np.zeros(b.shape) for b in biases]
    nabla_w = [np.zeros(w.shape) for w in weights]
    nabla_b[-1] = delta
    nabla_w[-1] = np.dot(delta, activations[-2].transpose())
    for l in range(2, len(weights) + 1):
        delta = np.dot(weights[-l + 1].transpose(), delta) * (zs[-l] > 0)
        nabla_b[-l] = delta
        nabla_w[-l] = np.dot(delta, activations[-l - 1].transpose())
    return nabla_b, nabla_w


def two_layer_grads(params, X, Y):
    """update_mini_batch's sum over the samples, divided by their number."""
    weights, biases = [params["W1"], params["W2"]], [params["b1"], params["b2"]]
    nabla_b = [np.zeros(b.shape) for b in biases]
    nabla_w = [np.zeros(w.shape) for w in weights]
    m = X.shape[1]
    for j in range(m):
        delta_b, delta_w = backprop(weights, biases, X[:, j:j + 1], Y[:, j:j + 1])
        nabla_b = [nb + dnb for nb, dnb in zip(nabla_b, delta_b)]
        nabla_w = [nw + dnw for nw, dnw in zip(nabla_w, delta_w)]
    return {"W1": nabla_w[0] / m, "b1": nabla_b[0] / m,
            "W2": nabla_w[1] / m, "b2": nabla_b[1] / m}
