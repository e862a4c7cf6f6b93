import numpy as np


def two_layer_grads(parameters, X, Y):
    """The course's forward and backward in one: columns, W1/b1, dW1 keys, dA1 too."""
    W1, b1, W2, b2 = parameters["W1"], parameters["b1"], parameters["W2"], parameters["b2"]
    m = X.shape[1]
    Z1 = np.dot(W1, X) + b1
    A1 = np.maximum(0, Z1)
    Z2 = np.dot(W2, A1) + b2
    t = np.exp(Z2 - np.max(Z2, axis=0, keepdims=True))
    A2 = t / np.sum(t, axis=0, keepdims=True)
    dZ2 = A2 - Y
    dW2 = 1 / m * np.dot(dZ2, A1.T)
    db2 = 1 / m * np.sum(dZ2, axis=1, keepdims=True)
    dA1 = np.dot(W2.T, dZ2)
    dZ1 = np.array(dA1 * Z1, copy=True)
    dZ1[Z1 <= 0] = 0
    dW1 = 1 / m * np.dot(dZ1, X.T)
    db1 = 1 / m * np.sum(dZ1, axis=1, keepdims=True)
    return {"dA1": dA1, "dW2": dW2, "db2": db2, "dW1": dW1, "db1": db1}
