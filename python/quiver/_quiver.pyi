"""Type hints of the native module (crates/quiver-py). Use it through quiver.FeatureStore."""

from typing import Any, Callable, List, Optional

__version__: str

ProgressCallback = Optional[Callable[[str, int, int], None]]

class QuiverError(Exception):
    """Every error Quiver raises; the message is the one the `quiver` command prints."""

class DefinitionError(QuiverError):
    """Definitions or the registry: YAML, an unknown feature/view/service, a breaking plan."""

class DataError(QuiverError):
    """Input data: an entity or label frame, a source, a request."""

class StoreError(QuiverError):
    """The metadata store or the online store: unreachable, locked, corrupt."""

class ModelError(QuiverError):
    """Training, scoring or a model file; an unknown model, version or alias."""

class Store:
    """A repository, opened as the `quiver` command opens it."""

    def __init__(self, repo: str) -> None: ...
    @property
    def repo(self) -> str: ...
    def last_result_buffers(self) -> List[int]: ...
    def historical(
        self,
        entities: Any,
        features: Optional[List[str]] = None,
        service: Optional[str] = None,
        timestamp_column: str = "event_timestamp",
        full_names: bool = False,
        snapshots: bool = True,
        progress: ProgressCallback = None,
    ) -> Any: ...
    def online(self, request: str) -> str: ...
    def materialize(
        self,
        start: Optional[str],
        end: str,
        views: List[str] = ...,
        batch_rows: int = 10000,
        progress: ProgressCallback = None,
    ) -> str: ...
    def plan(self) -> str: ...
    def apply(self, allow_breaking: bool = False, check_sources: bool = True) -> str: ...
    def registry(self) -> str: ...
    def service_features(self, name: str) -> List[str]: ...
    def train(
        self,
        service: str,
        labels: str,
        label: str,
        model: str = "gbdt",
        task: Optional[str] = None,
        params: List[str] = ...,
        split: str = "time",
        name: Optional[str] = None,
        promote: Optional[str] = None,
        timestamp_column: str = "event_timestamp",
        frequency_encode: List[str] = ...,
        allow_unknown_entities: bool = False,
        progress: ProgressCallback = None,
    ) -> str: ...
    def predict(
        self,
        model: str,
        entities: Any,
        timestamp_column: str = "event_timestamp",
        progress: ProgressCallback = None,
    ) -> Any: ...
    def import_lightgbm(
        self, file: str, service: str, name: Optional[str] = None, promote: Optional[str] = None
    ) -> str: ...
    def drift(
        self,
        reference: Any,
        current: Any,
        features: Optional[List[str]] = None,
        drift_share: float = 0.5,
    ) -> str: ...
