import numpy as np


def two_layer_grads(params, X, y):
    """cs231n's TwoLayerNet.loss: rows, W1/b1, integer labels, (loss, grads)."""
    W1, b1 = params["W1"], params["b1"]
    W2, b2 = params["W2"], params["b2"]
    N = X.shape[0]
    hidden = np.maximum(0, X.dot(W1) + b1)
    scores = hidden.dot(W2) + b2
    scores -= np.max(scores, axis=1, keepdims=True)
    probs = np.exp(scores) / np.sum(np.exp(scores), axis=1, keepdims=True)
    loss = -np.sum(np.log(probs[np.arange(N), y])) / N
    grads = {}
    dscores = probs.copy()
    dscores[np.arange(N), y] -= 1
    dscores /= N
    grads["W2"] = hidden.T.dot(dscores)
    grads["b2"] = np.sum(dscores, axis=0)
    dhidden = dscores.dot(W2.T)
    dhidden[hidden <= 0] = 0
    grads["W1"] = X.T.dot(dhidden)
    grads["b1"] = np.sum(dhidden, axis=0)
    return loss, grads
