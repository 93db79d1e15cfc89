from pymilvus import connections

# 连接到Milvus
connections.connect(
    alias="default",
    host="localhost",
    port="19530"
)
print("连接成功！")

from pymilvus import Collection, FieldSchema, CollectionSchema, DataType

# 定义字段
fields = [
    FieldSchema(name="id", dtype=DataType.INT64, is_primary=True, auto_id=True),
    FieldSchema(name="text", dtype=DataType.VARCHAR, max_length=500),
    FieldSchema(name="embedding", dtype=DataType.FLOAT_VECTOR, dim=768)
]

# 创建Schema
schema = CollectionSchema(fields=fields, description="文档集合")

# 创建Collection
collection = Collection(name="documents", schema=schema)
print("Collection创建成功！")

import numpy as np

# 准备数据
texts = ["Python入门教程", "机器学习基础", "深度学习实战"]
embeddings = np.random.rand(3, 768).tolist()  # 实际应该用模型生成

# 插入数据
data = [texts, embeddings]
collection.insert(data)
print(f"插入了 {len(texts)} 条数据")

# 创建索引
index_params = {
    "metric_type": "L2",
    "index_type": "IVF_FLAT",
    "params": {"nlist": 128}
}
collection.create_index(field_name="embedding", index_params=index_params)

# 加载Collection到内存
collection.load()

# 搜索
query_embedding = np.random.rand(1, 768).tolist()
results = collection.search(
    data=query_embedding,
    anns_field="embedding",
    param={"metric_type": "L2", "params": {"nprobe": 10}},
    limit=3,
    output_fields=["text"]
)

# 输出结果
for hits in results:
    for hit in hits:
        print(f"ID: {hit.id}, 距离: {hit.distance}, 文本: {hit.entity.get('text')}")
