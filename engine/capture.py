"""A pass recorded once and replayed: CUDA graphs on the cuda backend.

At batch 1 a saliency pass of a small network is a few hundred short kernel launches, and
the time goes into launching them from Python, not into running them. `capture` records
every launch of one call of a function (forward and backward, say) as a CUDA graph through
CuPy's stream capture; a replay then starts them all with one call. What it takes:

- the function runs once before the capture, on the capturing stream, so that every kernel
  is compiled and loaded and every array it allocates has a block waiting in a memory pool
  of the capture's own;
- that pool is used by nothing else: the arrays freed during the capture stay reserved for
  the graph, which writes into them at every replay (PyTorch keeps a private pool for its
  graphs for the same reason);
- no host synchronisation inside the function (no .get(), no float(array)): the engine's
  cuda path has none between a forward and an input gradient;
- new inputs are copied into the recorded input arrays, and the outputs are the recorded
  output arrays, overwritten by every replay.

On the numpy and emulator backends there is nothing to record: the function simply runs
again on the new inputs (same results, no speed-up), which is how the plumbing is tested
without a GPU. bench/gpu_kernels.py measures what the graph buys.
"""
from .backend import get_backend


class Captured:
    """`function(*inputs)` recorded once; call it with arrays of the recorded shapes."""

    def __init__(self, function, inputs, backend):
        self.function, self.backend = function, backend
        self.inputs = [backend.xp.array(backend.asarray(a), copy=True) for a in inputs]
        self.graph = None
        if backend.name == "cuda":
            self._record(backend.xp)

    def _record(self, cupy):
        self.stream, self.pool = cupy.cuda.Stream(non_blocking=True), cupy.cuda.MemoryPool()
        with cupy.cuda.using_allocator(self.pool.malloc), self.stream:
            self.function(*self.inputs)  # compiles every kernel, fills the private pool
            self.stream.synchronize()
            self.stream.begin_capture()
            try:
                self.outputs = self.function(*self.inputs)
            finally:
                self.graph = self.stream.end_capture()

    def __call__(self, *arrays):
        if len(arrays) != len(self.inputs):
            raise ValueError(f"this capture takes {len(self.inputs)} arrays, got {len(arrays)}")
        for recorded, array in zip(self.inputs, arrays):
            if tuple(array.shape) != recorded.shape:
                raise ValueError(f"captured for an input of shape {recorded.shape}, got {tuple(array.shape)}")
        if self.graph is None:
            return self.function(*(self.backend.asarray(a, dtype=r.dtype) for a, r in zip(arrays, self.inputs)))
        cupy = self.backend.xp
        caller = cupy.cuda.get_current_stream()
        self.stream.wait_event(caller.record())  # inputs made on the caller's stream are ready
        with self.stream:
            for recorded, array in zip(self.inputs, arrays):
                recorded[...] = self.backend.asarray(array, dtype=recorded.dtype)
            self.graph.launch(self.stream)
        caller.wait_event(self.stream.record())  # the caller sees the outputs only when written
        return self.outputs


def capture(function, *inputs, backend):
    """`function` (arrays of `backend` in, an array or a tuple of arrays out, no host
    synchronisation inside) recorded on `inputs` as a CUDA graph where `backend` is cuda;
    returns a callable that replays it on new arrays of the same shapes (see the module's
    docstring: its outputs are overwritten by the next call)."""
    return Captured(function, inputs, get_backend(backend))
