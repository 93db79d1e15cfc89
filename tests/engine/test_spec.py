from __future__ import annotations

import numpy as np
import pytest

from pgvec.engine import IndexSpec, Metric, SearchParams, VectorCollection
from pgvec.engine.spec import default_nprobe
from pgvec.errors import FeatureNotSupported, InvalidParameter, UndefinedObject


def test_metric_lookups():
    assert Metric.from_operator("<->") is Metric.L2
    assert Metric.from_operator("<#>") is Metric.IP
    assert Metric.from_operator("<=>") is Metric.COSINE
    assert Metric.from_operator("<+>") is Metric.L1
    assert Metric.from_opclass("vector_cosine_ops") is Metric.COSINE
    assert Metric.from_opclass("vector_l1_ops") is Metric.L1
    assert Metric.from_name("cosine") is Metric.COSINE
    assert Metric.from_name("Ip") is Metric.IP
    assert Metric.L2.operator == "<->" and Metric.IP.opclass == "vector_ip_ops"
    with pytest.raises(InvalidParameter):
        Metric.from_operator("<<")
    with pytest.raises(UndefinedObject):
        Metric.from_opclass("vector_foo_ops")
    with pytest.raises(FeatureNotSupported):
        Metric.from_name("HAMMING")
    with pytest.raises(InvalidParameter):
        Metric.from_name("nope")


def test_names_and_defaults():
    s = IndexSpec.create("hnsw", Metric.L2)
    assert s.index_type == "HNSW" and dict(s.params) == {"M": 16, "efConstruction": 64}
    s = IndexSpec.create("HNSW", Metric.IP, {"M": "8", "efConstruction": 40})
    assert dict(s.params) == {"M": 8, "efConstruction": 40}
    s = IndexSpec.create("hnsw", Metric.COSINE, {"m": 24, "ef_construction": "100"})
    assert dict(s.params) == {"M": 24, "efConstruction": 100}
    assert IndexSpec.create("ivfflat", Metric.L2, {"lists": "50"}).params == {"nlist": 50}
    assert IndexSpec.create("ivf_sq8", Metric.L2).params == {"nlist": 100}
    pq = IndexSpec.create("IVF_PQ", Metric.L2, {"nlist": 10}, dim=32)
    assert dict(pq.params) == {"nlist": 10, "m": 16, "nbits": 8}
    assert IndexSpec.create("flat", Metric.L1).params == {}
    spec = IndexSpec.create("IVF_PQ", Metric.COSINE, {"m": 4, "nbits": 6})
    assert IndexSpec.from_json(spec.to_json()) == spec


def test_option_errors():
    with pytest.raises(InvalidParameter, match='unrecognized parameter "lists"') as e:
        IndexSpec.create("hnsw", Metric.L2, {"lists": 10})
    assert e.value.sqlstate == "22023"
    with pytest.raises(InvalidParameter, match='unrecognized parameter "m"'):
        IndexSpec.create("flat", Metric.L2, {"m": 10})
    with pytest.raises(InvalidParameter) as e:
        IndexSpec.create("hnsw", Metric.L2, {"m": 1})
    assert str(e.value) == 'value 1 out of bounds for option "m"'
    assert e.value.detail == 'Valid values are between "2" and "100".'
    with pytest.raises(InvalidParameter, match='out of bounds for option "lists"'):
        IndexSpec.create("ivfflat", Metric.L2, {"lists": 0})
    with pytest.raises(InvalidParameter, match='invalid value for integer option "m": abc'):
        IndexSpec.create("hnsw", Metric.L2, {"m": "abc"})
    with pytest.raises(InvalidParameter, match="invalid value"):
        IndexSpec.create("hnsw", Metric.L2, {"m": 2.5})
    with pytest.raises(InvalidParameter, match=r"ef_construction must be greater than or equal"):
        IndexSpec.create("hnsw", Metric.L2, {"m": 48, "ef_construction": 64})
    with pytest.raises(InvalidParameter, match="nbits"):
        IndexSpec.create("IVF_PQ", Metric.L2, {"nbits": 17})
    with pytest.raises(InvalidParameter, match="does not exist"):
        IndexSpec.create("btree", Metric.L2)
    with pytest.raises(FeatureNotSupported):
        IndexSpec.create("hnsw", Metric.L1)
    with pytest.raises(InvalidParameter, match=r"dimension 30 is not divisible by m \(8\)"):
        IndexSpec.create("IVF_PQ", Metric.L2, {"m": 8}, dim=30)
    coll = VectorCollection(30)
    coll.upsert(list(range(300)), np.random.default_rng(0).random((300, 30)))
    with pytest.raises(InvalidParameter, match="not divisible"):
        coll.build_index(IndexSpec.create("IVF_PQ", Metric.L2, {"m": 8, "nlist": 4}))
    # fewer rows than lists: kept, searched exactly until there are enough to train on
    coll.build_index(IndexSpec.create("IVF_FLAT", Metric.L2, {"nlist": 500}))
    assert coll.index_spec is not None and coll.index_spec.index_type == "IVF_FLAT"
    assert coll.stats()["sealed_rows"] == 0 and coll.stats()["growing_rows"] == 300


def test_search_params():
    assert SearchParams.create({}) == SearchParams(None, None)
    assert SearchParams.create({"ef": "80", "nprobe": 4}) == SearchParams(80, 4)
    assert SearchParams.create({"ef_search": 10, "probes": "2"}) == SearchParams(10, 2)
    assert SearchParams().ef_for(10) == 64 and SearchParams(10).ef_for(25) == 25
    assert SearchParams().nprobe_for(100) == 10 and SearchParams(nprobe=500).nprobe_for(64) == 64
    assert default_nprobe(4) == 4 and default_nprobe(4096) == 64
    with pytest.raises(InvalidParameter, match='unrecognized parameter "foo"'):
        SearchParams.create({"foo": 1})
    with pytest.raises(InvalidParameter, match='out of bounds for option "probes"'):
        SearchParams.create({"probes": 0})


@pytest.mark.parametrize("index_type", ["IVF_FLAT", "IVF_SQ8", "BIN_IVF_FLAT"])
def test_too_few_rows_a_list_is_logged_not_printed(
    index_type: str, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    """IVF lists trained on fewer rows than FAISS wants: pgvec's log says so (and what to
    do); FAISS's own k-means warning does not reach the server's stderr."""
    from pgvec.engine.faiss_index import build

    binary = index_type.startswith("BIN")
    spec = IndexSpec.create(index_type, Metric.HAMMING if binary else Metric.L2, {"nlist": 4})
    rng = np.random.default_rng(0)
    rows = rng.integers(0, 256, (30, 2), dtype=np.uint8) if binary else rng.random((30, 4))
    with caplog.at_level("WARNING", logger="pgvec.engine.faiss_index"):
        index = build(spec, rows.astype(np.uint8 if binary else np.float32), 16 if binary else 4)
    assert index.ntotal == 30
    assert "4 lists trained on 30 rows" in caplog.text
    assert "WARNING clustering" not in capfd.readouterr().err


def test_ivf_pq_on_fewer_rows_than_its_codes_says_so() -> None:
    from pgvec.engine.faiss_index import build

    spec = IndexSpec.create("IVF_PQ", Metric.L2, {"nlist": 2, "m": 2, "nbits": 8})
    rows = np.random.default_rng(0).random((100, 4), dtype=np.float32)
    with pytest.raises(InvalidParameter, match="needs at least 256 rows \\(100 given\\)"):
        build(spec, rows, 4)
    assert build(IndexSpec.create("IVF_PQ", Metric.L2, {"nlist": 2, "m": 2, "nbits": 4}), rows, 4)
