"""Independent references the tests trust, and a device that lists what it launches."""
import numpy as np

from deepinside.kernels.ladder import PoisonedDevice


def numerical_gradient(function, x, epsilon=1e-6):
    """Central differences of the scalar function(x) with respect to every element of x
    (float64, modified in place and restored)."""
    gradient = np.zeros_like(x)
    flat, flat_gradient = x.reshape(-1), gradient.reshape(-1)
    for i in range(flat.size):
        original = flat[i]
        flat[i] = original + epsilon
        plus = function(x)
        flat[i] = original - epsilon
        minus = function(x)
        flat[i] = original
        flat_gradient[i] = (plus - minus) / (2 * epsilon)
    return gradient


def relative_error(actual, expected):
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    scale = max(np.abs(expected).max(), 1e-12)
    return np.abs(actual - expected).max() / scale


def distinct_values(rng, shape):
    """Random values with no two equal (so max-pool has no ties and finite differences
    never cross a kink)."""
    values = rng.permutation(int(np.prod(shape))).astype(np.float64)
    return (values / values.size - 0.5 + 0.01 * rng.standard_normal(values.size)).reshape(shape)


class RecordingDevice(PoisonedDevice):
    """A poisoned device that also lists what it launches: `launched`, (kernel, arguments)."""

    def __init__(self, *arguments, **options):
        super().__init__(*arguments, **options)
        self.launched = []

    def launch(self, kernel, grid, *arguments):
        self.launched.append((kernel, arguments))
        super().launch(kernel, grid, *arguments)

    def kernels(self):
        """The names launched since the last call, and forget them."""
        names = [kernel for kernel, _ in self.launched]
        self.launched.clear()
        return names
