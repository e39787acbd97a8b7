"""vlart: C++ inference runtime for vision-language-action robot policies"""

from collections.abc import Mapping, Sequence
from typing import Annotated

import numpy
from numpy.typing import NDArray

from vlart import (
    FormatError as FormatError,
    InvalidArgumentError as InvalidArgumentError,
    IoError as IoError,
    NotFoundError as NotFoundError,
    UnsupportedError as UnsupportedError,
    VlartError as VlartError
)


def version() -> str:
    """The vlart library version."""

class _Meta:
    def __init__(self) -> None: ...

    @property
    def timings(self) -> dict: ...

    @property
    def text(self) -> str: ...

    @property
    def tokens(self) -> list[int]: ...

class _Policy:
    def __init__(self, path: str, threads: int = 0, dtype: str = 'f32', backend: str = 'cpu', flow_steps: int = 0, tokenizer: str = '', noise_seed: int = 0, vision_cache_bytes: int = 0, task_cache_bytes: int = 4194304, attention: str = 'auto', vlm_config: str = '', response_max_tokens: int = 0, response_stop_at_eos: bool = True, decode_weights: str = '', reason_every: int = 0, reason_scene_threshold: float = 0.0) -> None: ...

    @property
    def info(self) -> dict: ...

    def infer(self, images: Mapping[str, Annotated[NDArray[numpy.uint8], dict(shape=(None, None, None), device='cpu', writable=False)]], state: Annotated[NDArray[numpy.float32], dict(shape=(None,), order='C', device='cpu', writable=False)], task: str, noise: Annotated[NDArray[numpy.float32], dict(order='C', device='cpu', writable=False)] | None, token_ids: Sequence[int] | None, robot_id: str, out: Annotated[NDArray[numpy.float32], dict(shape=(None, None), order='C', device='cpu')], meta: _Meta) -> None: ...

    def infer_batch(self, images: Sequence[Mapping[str, Annotated[NDArray[numpy.uint8], dict(shape=(None, None, None), device='cpu', writable=False)]]], states: Sequence[Annotated[NDArray[numpy.float32], dict(shape=(None,), order='C', device='cpu', writable=False)]], tasks: Sequence[str], noise: Annotated[NDArray[numpy.float32], dict(order='C', device='cpu', writable=False)] | None = None, robot_ids: Sequence[str] = []) -> list[tuple]: ...

    def validate(self, images: Mapping[str, Annotated[NDArray[numpy.uint8], dict(shape=(None, None, None), device='cpu', writable=False)]], state: Annotated[NDArray[numpy.float32], dict(shape=(None,), order='C', device='cpu', writable=False)], task: str = '') -> None: ...

    def seeded_noise(self, seed: int) -> Annotated[NDArray[numpy.float32], dict(shape=(None,))]: ...

    def cache_stats(self) -> dict: ...

    def clear_vision_cache(self, robot_id: str | None = None) -> None: ...

    def profile_report(self) -> str: ...
