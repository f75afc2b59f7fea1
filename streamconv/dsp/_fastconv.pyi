# The interface of the C extension built from _fastconv.c, for the type checker.
import numpy as np

class Engine:
    def process(self, x: np.ndarray, out: np.ndarray | None = None, /) -> np.ndarray: ...
    def reset(self) -> None: ...

def direct(
    double: bool,
    n_in: int,
    n_out: int,
    path_in: np.ndarray,
    path_out: np.ndarray,
    taps: np.ndarray,
    empty: object,
    dtype: np.dtype,
    /,
) -> Engine: ...
def partitioned(
    double: bool,
    n_in: int,
    n_out: int,
    path_in: np.ndarray,
    path_out: np.ndarray,
    segments: list[tuple[int, int, int, int, int, np.ndarray]],
    flags: int,
    empty: object,
    dtype: np.dtype,
    /,
) -> Engine: ...
