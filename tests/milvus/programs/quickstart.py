"""MilvusClient's quick start, as users of every pymilvus version write it.

Run as ``python -c <this text> <uri>``; prints one line per step (its name, a tab and
JSON) for the test to check.
"""

import json
import sys

import numpy as np
from pymilvus import MilvusClient


def show(step, value):
    print(f"{step}\t{json.dumps(value, sort_keys=True, default=str)}")


client = MilvusClient(uri=sys.argv[1])
if client.has_collection("quick_start"):
    client.drop_collection("quick_start")
client.create_collection("quick_start", dimension=8)
show("collections", client.list_collections())

rng = np.random.default_rng(7)
vectors = rng.random((20, 8)).astype(np.float32)
rows = [
    {"id": i, "vector": vectors[i].tolist(), "color": ["red", "blue"][i % 2], "n": i}
    for i in range(20)
]
res = client.insert("quick_start", rows)
show("insert", {"count": res["insert_count"], "ids": list(res["ids"])})

hits = client.search(
    "quick_start",
    data=[vectors[0].tolist(), vectors[1].tolist()],
    limit=3,
    filter='color == "red"',
    output_fields=["color", "n"],
)
show(
    "search",
    [
        [
            {
                "id": h["id"],
                "distance": h["distance"],
                "color": h["entity"]["color"],
                "n": h["entity"]["n"],
            }
            for h in per_query
        ]
        for per_query in hits
    ],
)

got = client.query("quick_start", filter="n >= 16", output_fields=["n", "color"])
show("query", sorted([r["id"], r["n"], r["color"]] for r in got))

got = client.get("quick_start", ids=[3, 4])
show("get", sorted([r["id"], r["color"], len(r["vector"])] for r in got))

res = client.delete("quick_start", ids=[0, 1])
show("delete", res["delete_count"] if isinstance(res, dict) else res)
res = client.delete("quick_start", filter="n >= 18")
show("delete filter", res["delete_count"] if isinstance(res, dict) else res)

res = client.upsert(
    "quick_start", [{"id": 2, "vector": vectors[2].tolist(), "color": "green", "n": 200}]
)
show("upsert", res["upsert_count"])
got = client.query("quick_start", filter="id == 2", output_fields=["color", "n"])
show("after upsert", [[r["id"], r["color"], r["n"]] for r in got])
got = client.query("quick_start", filter="", output_fields=["count(*)"])
show("count", got[0]["count(*)"])

it = client.query_iterator("quick_start", batch_size=4, output_fields=["n"])
ids = []
while page := it.next():
    ids.extend(r["id"] for r in page)
it.close()
show("query iterator", ids)
it = client.search_iterator("quick_start", data=[vectors[5].tolist()], batch_size=4, limit=10)
hits = []
while page := it.next():
    hits.extend([h["id"], h["distance"]] for h in page)
it.close()
show("search iterator", hits)

client.drop_collection("quick_start")
show("dropped", client.has_collection("quick_start"))
client.close()
