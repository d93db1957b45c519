"""Quiver, the feature store, from Python.

The package wraps the same Rust crates as the ``quiver`` command, so a notebook gets the
engine's speed with the habits of pandas and Feast::

    import quiver
    store = quiver.FeatureStore("path/to/repo")          # the folder with quiver.yaml
    train_df = store.get_historical_features(entity_df, features=["user_purchases:purchase_count_30d"])
    store.materialize("2025-01-01", "2025-06-30")
    store.get_online_features(features=[...], entity_rows=[{"user_id": 1}]).to_dict()

Data frames go in and come out as pandas, polars or pyarrow (the type you pass in is the type
you get back). Arrow data crosses between Python and Rust without copies (the Arrow C stream
interface); pandas output costs pyarrow's ``to_pandas`` conversion, polars and pyarrow none.

Long calls release the GIL, show a progress bar (tqdm, when installed, in a notebook or a
terminal) and stop on Ctrl-C (``KeyboardInterrupt``). Failures raise :class:`QuiverError`
subclasses with the messages the ``quiver`` command prints: :class:`DefinitionError`
(definitions, registry, unknown features), :class:`DataError` (input frames, sources),
:class:`StoreError` (metadata or online store), :class:`ModelError` (training, scoring).
"""

from __future__ import annotations

import datetime as _dt
import json as _json
import os as _os
import sys as _sys
import uuid as _uuid
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Union

import pyarrow as _pa

from . import _quiver
from ._quiver import DataError, DefinitionError, ModelError, QuiverError, StoreError

__version__ = _quiver.__version__

__all__ = [
    "FeatureStore",
    "FeatureService",
    "OnlineResponse",
    "QuiverError",
    "DefinitionError",
    "DataError",
    "StoreError",
    "ModelError",
]

Progress = Union[bool, None, Callable[[str, int, int], None]]
TimeLike = Union[str, _dt.datetime, _dt.date]


class FeatureService:
    """A feature service of the applied registry: its name, features and definition.

    Pass it as ``features=`` (Feast's habit) or its name as ``service=``.
    """

    def __init__(self, name: str, features: List[str], definition: Dict[str, Any]):
        self.name = name
        self.features = features
        self.definition = definition

    def __repr__(self) -> str:
        return f"FeatureService({self.name!r}, features={self.features!r})"


class OnlineResponse:
    """The answer of ``get_online_features``: the same document as ``POST /get-online-features``.

    ``to_dict()`` gives ``{name: [value per entity row]}`` (join keys first, then features in
    the order asked), as Feast's ``OnlineResponse.to_dict()``; ``statuses()`` and
    ``event_timestamps()`` the same shape with ``PRESENT`` / ``NOT_FOUND`` /
    ``OUTSIDE_MAX_AGE`` and RFC 3339 times; ``raw`` is the server's JSON document.
    """

    def __init__(self, raw: Dict[str, Any]):
        self.raw = raw

    @property
    def feature_names(self) -> List[str]:
        return list(self.raw["metadata"]["feature_names"])

    def _columns(self, key: str) -> Dict[str, List[Any]]:
        return {n: list(r[key]) for n, r in zip(self.feature_names, self.raw["results"])}

    def to_dict(self) -> Dict[str, List[Any]]:
        """``{name: values}``, one value per entity row."""
        return self._columns("values")

    def statuses(self) -> Dict[str, List[str]]:
        """``{name: statuses}``: PRESENT, NOT_FOUND or OUTSIDE_MAX_AGE per entity row."""
        return self._columns("statuses")

    def event_timestamps(self) -> Dict[str, List[str]]:
        """``{name: event times}`` of the stored rows the values come from."""
        return self._columns("event_timestamps")

    def to_df(self):
        """The values as a pandas DataFrame."""
        import pandas as pd

        return pd.DataFrame(self.to_dict())

    def __repr__(self) -> str:
        return f"OnlineResponse({self.to_dict()!r})"


def _time(t: TimeLike) -> str:
    """A time argument as the text the CLI takes (a naive datetime is UTC)."""
    if isinstance(t, _dt.datetime):
        if t.tzinfo is not None:
            t = t.astimezone(_dt.timezone.utc).replace(tzinfo=None)
        return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if isinstance(t, _dt.date):
        return t.isoformat()
    return str(t)


def _kind(df: Any) -> str:
    mod = type(df).__module__.split(".")[0]
    if mod == "pandas":
        return "pandas"
    if mod == "polars":
        return "polars"
    return "arrow"


def _to_arrow(df: Any, what: str) -> Any:
    """A pandas / polars / pyarrow frame as something with ``__arrow_c_stream__``."""
    kind = _kind(df)
    if kind == "pandas":
        return _pa.Table.from_pandas(df, preserve_index=False)
    if kind == "polars":
        return df.to_arrow()
    if isinstance(df, _pa.RecordBatch):
        return _pa.Table.from_batches([df])
    if hasattr(df, "__arrow_c_stream__") or isinstance(df, _pa.RecordBatchReader):
        return df
    raise DataError(
        f"{what}: a {type(df).__name__} is not a data frame: give a pandas, polars or pyarrow one"
    )


def _from_arrow(reader: Any, kind: str) -> Any:
    table = reader.read_all()
    if kind == "pandas":
        return table.to_pandas()
    if kind == "polars":
        import polars as pl

        return pl.from_arrow(table)
    return table


def _in_notebook() -> bool:
    ip = _sys.modules.get("IPython")
    try:
        return bool(ip and ip.get_ipython() is not None and "IPKernelApp" in ip.get_ipython().config)
    except Exception:
        return False


class _Bar:
    """A progress callback: a tqdm bar (tqdm.auto: a widget in notebooks) or the caller's."""

    def __init__(self, progress: Progress, unit: str):
        self.bar = None
        self.callback: Optional[Callable[[str, int, int], None]] = None
        self.unit = unit
        if callable(progress):
            self.callback = progress
        elif progress or (progress is None and (_in_notebook() or _sys.stderr.isatty())):
            try:
                from tqdm.auto import tqdm

                self.bar = tqdm(total=None, unit=unit, unit_scale=True, leave=False)
                self.callback = self._update
            except ImportError:
                self.callback = None

    def _update(self, message: str, done: int, total: int) -> None:
        bar = self.bar
        if total and bar.total != total:
            bar.total = total
        if message:
            bar.set_description(message, refresh=False)
        bar.update(done - bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _call(progress: Progress, unit: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    bar = _Bar(progress, unit)
    try:
        return fn(*args, progress=bar.callback, **kwargs)
    finally:
        bar.close()


def _json_default(v: Any) -> Any:
    # numpy and pandas scalars in entity rows
    if hasattr(v, "item"):
        return v.item()
    if isinstance(v, (_dt.datetime, _dt.date)):
        return v.isoformat()
    raise TypeError(f"{type(v).__name__} is not a JSON value")


class FeatureStore:
    """A Quiver repository: the folder with ``quiver.yaml``, its registry and its stores.

    Opened as the ``quiver`` command opens it (``QUIVER__REGISTRY`` and the other settings
    apply), so both see the same definitions, training data, online store and models. Nothing
    stays open between calls: the CLI and a server can use the repository too (a running
    ``quiver serve`` holds the embedded online store, so ``materialize`` and
    ``get_online_features`` on it then raise :class:`StoreError`; use Redis, or go through the
    server's HTTP API, to share it).

    Example::

        store = quiver.FeatureStore("quiver-demo")
        store.apply()
        df = store.get_historical_features(labels_df, service="churn_v1")
        store.materialize("2025-01-01", "now")
        store.get_online_features(service="churn_v1", entity_rows=[{"user_id": 1}]).to_dict()
    """

    def __init__(self, repo: Union[str, "_os.PathLike[str]"] = "."):
        self.repo = Path(repo)
        self._store = _quiver.Store(_os.fspath(repo))

    def __repr__(self) -> str:
        return f"FeatureStore({str(self.repo)!r})"

    # -- offline ----------------------------------------------------------------------------

    def get_historical_features(
        self,
        entity_df: Any,
        features: Union[Sequence[str], FeatureService, None] = None,
        service: Optional[str] = None,
        *,
        full_feature_names: bool = False,
        timestamp_column: str = "event_timestamp",
        snapshots: bool = True,
        progress: Progress = None,
    ) -> Any:
        """Point-in-time correct features for each row of ``entity_df`` (``quiver historical``).

        ``entity_df`` (pandas, polars or pyarrow) holds the join keys and ``timestamp_column``;
        every row comes back, in order, with all its columns followed by the features: for each
        row and feature, the latest value at or before the row's time within the view's TTL
        (windowed aggregations over the window ending at it). Give ``features`` (``view:feature``
        or ``view:*``; or a :class:`FeatureService`) or ``service``. The result has the type of
        ``entity_df``. ``snapshots=False`` recomputes views that keep offline snapshots.
        """
        if isinstance(features, FeatureService):
            features, service = None, features
        if isinstance(service, FeatureService):
            service = service.name
        if isinstance(features, str):
            features = [features]
        kind = _kind(entity_df)
        reader = _call(
            progress,
            "rows",
            self._store.historical,
            _to_arrow(entity_df, "entity_df"),
            features=list(features) if features is not None else None,
            service=service,
            timestamp_column=timestamp_column,
            full_names=full_feature_names,
            snapshots=snapshots,
        )
        return _from_arrow(reader, kind)

    # -- online -----------------------------------------------------------------------------

    def get_online_features(
        self,
        features: Union[Sequence[str], FeatureService, None] = None,
        entity_rows: Optional[Iterable[Mapping[str, Any]]] = None,
        *,
        service: Optional[str] = None,
        full_feature_names: bool = False,
        request_data: Optional[Mapping[str, Any]] = None,
    ) -> OnlineResponse:
        """The latest values in the online store, as ``POST /get-online-features`` answers.

        ``entity_rows`` is a list of ``{join_key: value}`` (Feast's shape); ``features`` are
        ``view:feature`` (or a :class:`FeatureService`, or ``service=``). Request-time views take
        their fields from ``request_data`` (a list per field, or one value for every row) or
        from the entity rows. The same code path as the server: equal answers.
        """
        if isinstance(features, FeatureService):
            features, service = None, features
        if isinstance(service, FeatureService):
            service = service.name
        if isinstance(features, str):
            features = [features]
        rows = list(entity_rows or [])
        keys: List[str] = []
        for r in rows:
            for k in r:
                if k not in keys:
                    keys.append(k)
        for i, r in enumerate(rows):
            missing = [k for k in keys if k not in r]
            if missing:
                raise DataError(f"entity_rows[{i}] has no {', '.join(missing)} (every row needs the same keys)")
        body: Dict[str, Any] = {
            "entities": {k: [r[k] for r in rows] for k in keys},
            "full_feature_names": full_feature_names,
        }
        if features:
            body["features"] = list(features)
        if service is not None:
            body["feature_service"] = service
        if request_data is not None:
            body["request_data"] = dict(request_data)
        raw = self._store.online(_json.dumps(body, default=_json_default))
        return OnlineResponse(_json.loads(raw))

    def materialize(
        self,
        start_date: TimeLike,
        end_date: TimeLike,
        feature_views: Optional[Sequence[str]] = None,
        *,
        batch_rows: int = 10_000,
        progress: Progress = None,
    ) -> Dict[str, Any]:
        """Loads the latest value per entity with event time in [start, end] into the online
        store (``quiver materialize``); aggregations are computed as of ``end_date``. Times are
        datetimes (naive = UTC) or the CLI's text (``2025-01-31``, ``now``). Runs the quality
        gate first, as the CLI does. Returns the report (rows written per view)."""
        return _json.loads(
            _call(
                progress,
                "rows",
                self._store.materialize,
                _time(start_date),
                _time(end_date),
                views=list(feature_views or []),
                batch_rows=batch_rows,
            )
        )

    def materialize_incremental(
        self,
        end_date: TimeLike,
        feature_views: Optional[Sequence[str]] = None,
        *,
        batch_rows: int = 10_000,
        progress: Progress = None,
    ) -> Dict[str, Any]:
        """``quiver materialize-incremental``: from each view's watermark (END minus its TTL the
        first time) to ``end_date``; the watermark advances after the rows are written."""
        return _json.loads(
            _call(
                progress,
                "rows",
                self._store.materialize,
                None,
                _time(end_date),
                views=list(feature_views or []),
                batch_rows=batch_rows,
            )
        )

    # -- definitions ------------------------------------------------------------------------

    def plan(self) -> Dict[str, Any]:
        """What ``apply`` would change (``quiver plan``): ``{"base_version", "plan", "text"}``;
        ``text`` is the CLI's rendering (breaking changes marked ``[BREAKING]``)."""
        return _json.loads(self._store.plan())

    def apply(self, *, allow_breaking: bool = False, check_sources: bool = True) -> Dict[str, Any]:
        """Validates the definitions (against their data unless ``check_sources=False``) and
        stores them as a new registry version (``quiver apply``): ``{"version", "plan", "text"}``.
        A plan with breaking changes raises :class:`DefinitionError` unless ``allow_breaking``."""
        return _json.loads(self._store.apply(allow_breaking=allow_breaking, check_sources=check_sources))

    def _registry(self) -> Dict[str, Any]:
        return _json.loads(self._store.registry())

    def list_feature_views(self) -> List[Dict[str, Any]]:
        """The applied feature views' definitions (name, entities, source, ttl, features, ...)."""
        return list(self._registry()["views"].values())

    def list_feature_services(self) -> List[FeatureService]:
        """The applied feature services."""
        return [self.get_feature_service(n) for n in self._registry()["services"]]

    def get_feature_service(self, name: str) -> FeatureService:
        """A feature service by name; an unknown name raises :class:`DefinitionError` naming
        the services that exist."""
        features = self._store.service_features(name)
        return FeatureService(name, features, self._registry()["services"][name])

    # -- models -----------------------------------------------------------------------------

    def train(
        self,
        service: Union[str, FeatureService],
        labels: Any,
        label: str,
        *,
        model: str = "gbdt",
        name: Optional[str] = None,
        promote: Optional[str] = None,
        task: Optional[str] = None,
        params: Optional[Mapping[str, Any]] = None,
        split: str = "time",
        timestamp_column: str = "event_timestamp",
        frequency_encode: Sequence[str] = (),
        allow_unknown_entities: bool = False,
        progress: Progress = None,
    ) -> Dict[str, Any]:
        """Trains a model on a feature service and registers it (``quiver train``).

        ``labels`` is a data frame (or a Parquet / CSV path) with the join keys,
        ``timestamp_column`` and the ``label`` column; a frame is saved under
        ``.quiver/python/labels/`` so the version's lineage names a file. ``model`` is
        ``"gbdt"`` or ``"logistic"``; ``params`` LightGBM-named parameters
        (``{"num_trees": 300}``). Returns ``{"name", "version", "metrics", "importance", ...}``.
        """
        if isinstance(service, FeatureService):
            service = service.name
        if isinstance(labels, (str, _os.PathLike)):
            path = Path(labels)
        else:
            import pyarrow.parquet as pq

            table = _to_arrow(labels, "labels")
            if not isinstance(table, _pa.Table):
                table = _pa.table(table)
            folder = self.repo / ".quiver" / "python" / "labels"
            folder.mkdir(parents=True, exist_ok=True)
            stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%S")
            path = folder / f"{name or service}-{stamp}-{_uuid.uuid4().hex[:8]}.parquet"
            pq.write_table(table, path)
        return _json.loads(
            _call(
                progress,
                "rows",
                self._store.train,
                service,
                _os.fspath(path.resolve()),
                label,
                model=model,
                task=task,
                params=[f"{k}={v}" for k, v in (params or {}).items()],
                split=split,
                name=name,
                promote=promote,
                timestamp_column=timestamp_column,
                frequency_encode=list(frequency_encode),
                allow_unknown_entities=allow_unknown_entities,
            )
        )

    def predict(
        self,
        model: str,
        entity_df: Any,
        *,
        timestamp_column: str = "event_timestamp",
        progress: Progress = None,
    ) -> Any:
        """Scores entity rows offline (``quiver models predict``): point-in-time features,
        encoded as in training. ``model`` is ``NAME``, ``NAME:VERSION`` or ``NAME@ALIAS``
        (``NAME`` = its champion). Returns the rows with ``score`` (binary, regression) or
        ``class`` and ``p_<class>`` columns, as ``entity_df``'s type. With entity times equal to
        the last materialization's end, scores equal ``/predict``'s."""
        kind = _kind(entity_df)
        reader = _call(
            progress,
            "rows",
            self._store.predict,
            model,
            _to_arrow(entity_df, "entity_df"),
            timestamp_column=timestamp_column,
        )
        return _from_arrow(reader, kind)

    def import_model(
        self,
        path: Union[str, "_os.PathLike[str]"],
        service: Union[str, FeatureService],
        *,
        name: Optional[str] = None,
        promote: Optional[str] = None,
        format: str = "lightgbm",
    ) -> Dict[str, Any]:
        """Registers a LightGBM text model (``Booster.save_model``) trained elsewhere as a new
        version reading ``service`` (``quiver models import``): ``{"name", "version", "task"}``.
        Its feature names are the service's (``view__feature`` or ``feature``)."""
        if format != "lightgbm":
            raise DataError(f"format={format!r}: only \"lightgbm\" models are imported")
        if isinstance(service, FeatureService):
            service = service.name
        return _json.loads(
            self._store.import_lightgbm(_os.fspath(Path(path).resolve()), service, name=name, promote=promote)
        )

    # -- monitoring -------------------------------------------------------------------------

    def drift(
        self,
        reference: Any,
        current: Any,
        *,
        features: Optional[Sequence[str]] = None,
        drift_share: float = 0.5,
    ) -> Dict[str, Any]:
        """Per-feature drift of ``current`` against ``reference`` (``quiver drift --json``: the
        tests and thresholds of Evidently's DataDriftPreset, through the CLI's own code). Each
        is a data frame or a string naming a data set as ``quiver drift`` does: a Parquet / CSV
        file or folder (relative to the repository), ``FILE@START..END`` (its rows with
        ``event_timestamp`` in [START, END)), ``model:NAME[:VERSION]`` (the sample of the
        training split stored with the version), ``log:NAME[:VERSION]@START..END`` (the
        prediction log) or ``service:S@START..END`` (the service's point-in-time features for
        the entity keys and times of its sources' rows in the range). Against a ``model:`` reference, a log's scores are compared as
        ``prediction_drift``; tests declared on features (``drift:``) apply."""

        def arg(x: Any, what: str) -> Any:
            if isinstance(x, (str, _os.PathLike)):
                return _os.fspath(x)
            return _to_arrow(x, what)

        return _json.loads(
            self._store.drift(
                arg(reference, "reference"),
                arg(current, "current"),
                features=list(features) if features is not None else None,
                drift_share=drift_share,
            )
        )
